import type { OrderState } from './order.ts';

/** How many orders an instance remembers: an order lives about a second under load, so far more than enough. */
const DEFAULT_CAPACITY = 2000;

/**
 * The orders this instance last wrote, each as it stood after a write of this instance that committed:
 * what the stream held at that version, and will hold at it forever (a stream only grows). Not the truth
 * about the order now — another instance, or the stale sweep, may have appended since — but a guess that
 * the next write checks for free: it appends at the remembered version, which the event store accepts only
 * if nothing came between (under the stream's row lock), and a guess that was stale is read again.
 *
 * So the saga's next step writes without reading first: market's `begin_placement` is one statement (was a
 * read and an append, two transactions), and a fill's completion one statement fewer in its transaction.
 * Only committed states are remembered (`afterCommit`): a rolled-back version may be taken by another
 * writer with other events, and the version check would then pass a state that never was.
 */
export class KnownOrders {
  private readonly capacity: number;
  private readonly orders = new Map<string, OrderState>();

  constructor(capacity = DEFAULT_CAPACITY) {
    this.capacity = capacity;
  }

  get(orderId: string): OrderState | undefined {
    return this.orders.get(orderId);
  }

  /** The order as a committed write left it; an older version than the one remembered is ignored. */
  remember(order: OrderState): void {
    const known = this.orders.get(order.id);
    if (known && known.version >= order.version) return;
    // Re-inserted, so that the oldest remembered is the first dropped.
    this.orders.delete(order.id);
    this.orders.set(order.id, order);
    if (this.orders.size > this.capacity) this.orders.delete(this.orders.keys().next().value!);
  }

  /** A guess the store refused (another writer came between): read the order again next time. */
  forget(orderId: string): void {
    this.orders.delete(orderId);
  }

  get size(): number {
    return this.orders.size;
  }
}
