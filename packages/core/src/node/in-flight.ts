/**
 * Work in flight, kept without allocating. A gateway under load serves its requests' local calls one at
 * a time (each ends within its HTTP request's I/O callback, before the next request is read), so a
 * `Set` of them went from one entry to none on every request, and V8 rebuilt its table each time —
 * in the old generation, where a long-lived set's table lives: garbage there, page faults and
 * mark-compacts, which a loop of concurrent calls in one process (where the set never empties) does
 * not show.
 */

/** What a `Roster` lists: the links are the roster's, set only by it. */
export interface Rostered<T> {
  previousInRoster: T | undefined;
  nextInRoster: T | undefined;
}

/** The entries in flight, in a list threaded through them: adding and deleting allocate nothing. */
export class Roster<T extends Rostered<T>> {
  private head: T | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(entry: T): void {
    entry.previousInRoster = undefined;
    entry.nextInRoster = this.head;
    if (this.head !== undefined) this.head.previousInRoster = entry;
    this.head = entry;
    this.count++;
  }

  /** Takes out an entry that `add` put in (once). */
  delete(entry: T): void {
    const { previousInRoster: previous, nextInRoster: next } = entry;
    if (previous === undefined) this.head = next;
    else previous.nextInRoster = next;
    if (next !== undefined) next.previousInRoster = previous;
    entry.previousInRoster = undefined;
    entry.nextInRoster = undefined;
    this.count--;
  }

  /** The entries now, newest first: a copy, so what is done with each may add or delete entries. */
  entries(): T[] {
    const all: T[] = [];
    for (let entry = this.head; entry !== undefined; entry = entry.nextInRoster) all.push(entry);
    return all;
  }
}

/** Work counted in and out, and a promise for when none is left (a drain waits for it). */
export class Tally {
  private count = 0;
  private waiters: (() => void)[] = [];

  get size(): number {
    return this.count;
  }

  enter(): void {
    this.count++;
  }

  leave(): void {
    if (--this.count > 0 || this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves once none is in flight: at once if none is now. */
  settled(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}
