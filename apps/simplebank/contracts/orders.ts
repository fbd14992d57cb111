import { action, defineError, event } from '@chassis/core';
import { z } from 'zod';
import { AccountId, Money, OrderId, OrderRef, OrderStatus, Quantity, Side, StockSymbol } from './common.ts';

export const OrderNotCancelable = defineError('ORDER_NOT_CANCELABLE', { status: 409, retryable: false });

const Placed = z.object({ orderId: OrderId, status: OrderStatus });

/**
 * The order's id, chosen by the caller to make placing it idempotent: placing again with the same id
 * returns the first order instead of a second one. Default: a new id.
 */
const ClientOrderId = OrderId.optional();

export const sellShares = action('orders.sellShares', {
  description: 'Places a sell order: reserves the shares (and the fee), records the order and announces it.',
  input: z.object({ accountId: AccountId, symbol: StockSymbol, quantity: Quantity, orderId: ClientOrderId }),
  output: Placed,
  idempotent: false,
});

export const buyShares = action('orders.buyShares', {
  description:
    'Places a buy order for a quantity of shares, or for as many as an amount of cash buys: reserves the cash (and the fee), records the order and announces it.',
  input: z
    .object({
      accountId: AccountId,
      symbol: StockSymbol,
      quantity: Quantity.optional(),
      amount: Money.optional(),
      orderId: ClientOrderId,
    })
    .refine((input) => (input.quantity === undefined) !== (input.amount === undefined), {
      message: 'give either quantity or amount, not both',
      path: ['quantity'],
    }),
  output: Placed,
  idempotent: false,
});

export const Order = z.object({
  id: OrderId,
  accountId: AccountId,
  side: Side,
  symbol: StockSymbol,
  quantity: Quantity,
  status: OrderStatus,
  /** The price it was filled at, once completed. */
  price: Money.nullable(),
  /** The fee charged (0.00 once refunded), once placed. */
  fee: Money.nullable(),
  /** Why it was rejected, failed or canceled. */
  reason: z.string().nullable(),
  history: z.array(z.object({ status: OrderStatus, at: z.string() })),
});

export const getOrder = action('orders.getOrder', {
  input: z.object({ orderId: OrderId }),
  output: Order,
  idempotent: true,
});

export const cancelOrder = action('orders.cancelOrder', {
  description: 'Cancels an order the exchange has not been given yet; ORDER_NOT_CANCELABLE (409) after that.',
  input: z.object({ orderId: OrderId }),
  output: Order,
  idempotent: true,
});

/**
 * Market asks before giving an order to the exchange (the book's "interrupt"): a canceled or expired
 * order is not placed, and once this says `proceed`, the order can no longer be canceled.
 */
export const beginPlacement = action('orders.beginPlacement', {
  input: z.object({
    orderId: OrderId,
    /**
     * The order as its `order_created` announced it: orders then starts the placement at that version
     * without reading the order first, and reads it only if something came between (absent: read first).
     */
    announced: z.object({ version: z.number().int().positive(), expiresAt: z.string(), limitPrice: Money }).optional(),
  }),
  output: z.object({ proceed: z.boolean(), limitPrice: Money.optional() }),
  idempotent: true,
});

export const orderCreated = event(
  'orders.order_created',
  OrderRef.extend({
    limitPrice: Money,
    createdAt: z.string(),
    /** The order's version as announced, and its expiry: for `beginPlacement` (absent from older orders). */
    version: z.number().int().positive().optional(),
    expiresAt: z.string().optional(),
  }),
);
/**
 * What an order's end says of it: its reference and who placed it — the service that placed it for a
 * customer (the subject of its `system` token, e.g. `place-strategy-orders`), or null for the customer's
 * own order — so that a service following only the orders it placed skips the others without a look at
 * its tables. Absent from orders recorded before it was (treat as unknown).
 */
const OrderEnd = OrderRef.extend({ placedBy: z.string().nullable().optional() });

export const orderRejected = event('orders.order_rejected', OrderEnd.extend({ reason: z.string() }));
export const orderCompleted = event('orders.order_completed', OrderEnd.extend({ price: Money }));
export const orderFailed = event('orders.order_failed', OrderEnd.extend({ reason: z.string() }));
export const orderCanceled = event('orders.order_canceled', OrderEnd);

/** Every change of an order, whole, with its stream version: what read models are built from. */
export const orderChanged = event('orders.order_changed', Order.extend({ version: z.number().int().positive() }));

/**
 * Fails an order whose placing stopped midway (its process died between recording it and hearing from
 * the ledger), so that it ends and the ledger releases whatever it holds. The orders service sweeps for
 * such orders itself; an order that moved on is left alone.
 */
export const failStaleOrder = action('orders.failStaleOrder', {
  input: z.object({ orderId: OrderId }),
  output: z.object({ failed: z.boolean() }),
  idempotent: true,
});
