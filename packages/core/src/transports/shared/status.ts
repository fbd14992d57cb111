import type { TransportStatus } from '../transport.ts';

/**
 * A transport's status and who hears about its changes: `onStatus` listeners, and waiters for the next
 * change (a publish that must resend on a new connection, a caller waiting to be connected again).
 * A listener that throws is reported, never allowed to break the reconnection that told it.
 */
export class StatusListeners {
  #status: TransportStatus;
  readonly #listeners = new Set<(status: TransportStatus) => void>();
  readonly #waiters = new Set<() => void>();
  /** The next change, shared by everyone waiting for it: made on first ask, settled and dropped at the change. */
  #nextChange: { promise: Promise<'status'>; resolve: (value: 'status') => void } | undefined;
  readonly #onListenerError: (error: unknown) => void;

  constructor(initial: TransportStatus, onListenerError: (error: unknown) => void = () => undefined) {
    this.#status = initial;
    this.#onListenerError = onListenerError;
  }

  get status(): TransportStatus {
    return this.#status;
  }

  /** Adds a listener; returns what removes it. */
  add(listener: (status: TransportStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Moves to `status` and tells waiters, then listeners; false when it was the status already. */
  set(status: TransportStatus): boolean {
    if (this.#status === status) return false;
    this.#status = status;
    const next = this.#nextChange;
    this.#nextChange = undefined;
    next?.resolve('status');
    for (const waiter of [...this.#waiters]) waiter();
    for (const listener of [...this.#listeners]) {
      try {
        listener(status);
      } catch (error) {
        this.#onListenerError(error);
      }
    }
    return true;
  }

  /**
   * Resolves at the next change. One promise serves every caller until then: a publish on the hot path
   * races its PubAck against it without a timer or a waiter of its own.
   */
  changed(): Promise<'status'> {
    if (!this.#nextChange) {
      let resolve!: (value: 'status') => void;
      const promise = new Promise<'status'>((settle) => (resolve = settle));
      this.#nextChange = { promise, resolve };
    }
    return this.#nextChange.promise;
  }

  /** Resolves `changed` with 'status' at the next change, or with 'timeout' after `ms`; `cancel` forgets it. */
  nextChange(ms: number): { changed: Promise<'status' | 'timeout'>; cancel: () => void } {
    let waiter: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const changed = new Promise<'status' | 'timeout'>((resolve) => {
      waiter = () => resolve('status');
      this.#waiters.add(waiter);
      timer = setTimeout(() => resolve('timeout'), Math.max(0, ms));
    });
    const cancel = (): void => {
      if (waiter) this.#waiters.delete(waiter);
      clearTimeout(timer);
    };
    void changed.then(cancel);
    return { changed, cancel };
  }
}
