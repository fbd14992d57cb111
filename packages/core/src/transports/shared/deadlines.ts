/**
 * Something waiting that gives up at `deadline` (epoch ms on this node's clock): `expire` is then called
 * once. Its links are the `CallDeadlines` list's, through the waiting things themselves: a `Set` that
 * emptied after every call shrank its table, and made it again for the next one.
 */
export abstract class Due {
  abstract readonly deadline: number;
  abstract expire(): void;
  /** Its neighbours while waiting. */
  previous: Due | undefined = undefined;
  next: Due | undefined = undefined;
  waiting = false;
}

/**
 * The deadlines of the calls whose callers wait (local calls; requests waiting for their replies), on
 * one timer armed for the earliest of them, rather than a timer each. A call that ends leaves the timer be: when it fires with nothing due it
 * re-arms for the next deadline, or stops holding the process open once nobody waits. A timer per
 * call was set and cleared on every local call, and with one call at a time each clear emptied Node's
 * timer list for that duration and each set made it again (about 0.4 µs a call, a tenth of its CPU).
 */
export class CallDeadlines {
  private first: Due | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The deadline the timer fires at; +Infinity while none is armed. */
  private armedFor = Number.POSITIVE_INFINITY;
  /** Whether the timer holds the process open (only while someone waits, as a timer per call did). */
  private referenced = false;

  private readonly fire = (): void => this.expireDue();

  add(due: Due): void {
    due.waiting = true;
    due.previous = undefined;
    due.next = this.first;
    if (this.first !== undefined) this.first.previous = due;
    this.first = due;
    if (due.deadline < this.armedFor) this.arm(due.deadline);
    else if (!this.referenced) {
      this.timer?.ref();
      this.referenced = true;
    }
  }

  delete(due: Due): void {
    if (!due.waiting) return;
    due.waiting = false;
    if (due.previous === undefined) this.first = due.next;
    else due.previous.next = due.next;
    if (due.next !== undefined) due.next.previous = due.previous;
    due.previous = undefined;
    due.next = undefined;
    if (this.first === undefined && this.referenced) {
      this.timer?.unref();
      this.referenced = false;
    }
  }

  private arm(deadline: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedFor = deadline;
    this.referenced = true;
    this.timer = setTimeout(this.fire, Math.max(0, deadline - Date.now()));
  }

  private expireDue(): void {
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    this.referenced = false;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (let due = this.first; due !== undefined; ) {
      const after = due.next;
      if (due.deadline <= now) {
        this.delete(due);
        due.expire();
      } else if (due.deadline < next) {
        next = due.deadline;
      }
      due = after;
    }
    if (next < Number.POSITIVE_INFINITY) this.arm(next);
  }
}
