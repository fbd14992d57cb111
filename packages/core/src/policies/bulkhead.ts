import { ChassisError } from '../errors.ts';

/**
 * A bulkhead per target or per handler: at most `maxConcurrent` at once, up to `maxQueued` waiting;
 * beyond that, `BULKHEAD_FULL` at once, so one slow dependency cannot take every socket, worker or byte
 * of memory with it.
 */
export interface BulkheadPolicy {
  maxConcurrent: number;
  maxQueued: number;
}

/**
 * A counting semaphore with a bounded queue, taken synchronously when a slot is free (the common case
 * costs no promise), and handed straight to the next in the queue when one is released.
 */
export class Bulkhead {
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  readonly target: string;
  readonly settings: BulkheadPolicy;

  constructor(target: string, settings: BulkheadPolicy) {
    this.target = target;
    this.settings = settings;
  }

  /** Work running now. */
  get inFlight(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#waiting.length;
  }

  /** Takes a slot if one is free; the caller must `leave` once its work ends. */
  tryEnter(): boolean {
    if (this.#running >= this.settings.maxConcurrent) return false;
    this.#running++;
    return true;
  }

  /** Waits in the queue for a slot (then held, to `leave`); `BULKHEAD_FULL` at once when the queue is full. */
  waitForSlot(): Promise<void> {
    if (this.#waiting.length >= this.settings.maxQueued) return Promise.reject(this.fullError());
    return new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  /** Gives the slot back: to the first in the queue, if any. */
  leave(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#running--;
  }

  async execute<T>(run: () => Promise<T>): Promise<T> {
    if (!this.tryEnter()) await this.waitForSlot();
    try {
      return await run();
    } finally {
      this.leave();
    }
  }

  private fullError(): ChassisError {
    return new ChassisError(
      'BULKHEAD_FULL',
      `${this.target} is at capacity: ${this.settings.maxConcurrent} running and ${this.settings.maxQueued} waiting`,
      { data: { target: this.target, ...this.settings } },
    );
  }
}
