import { action, defineError, event } from '@chassis/core';
import { z } from 'zod';
import { OrderId, ProductId, UserId } from './common.ts';

export const OrderStatus = z.enum(['pending', 'confirmed', 'on_hold', 'canceled']);

export const OrderItem = z.object({
  productId: ProductId,
  name: z.string(),
  quantity: z.number().int(),
  unitPrice: z.number(),
  lineTotal: z.number(),
});

export const Order = z.object({
  id: OrderId,
  userId: UserId,
  status: OrderStatus,
  items: z.array(OrderItem),
  total: z.number(),
  /** The payment once the saga has one: charged for a confirmed order, held for one on hold. */
  paymentId: z.string().uuid().nullable(),
  /** Why a canceled order was canceled. */
  reason: z.string().nullable(),
  /** An admin's decision on it, once it was held for review. */
  review: z.enum(['approve', 'reject']).nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const OrderNotFound = defineError('ORDER_NOT_FOUND', { status: 404, retryable: false });

/** A simulated card: the processor declines 4000 0000 0000 0002, as card test suites do. */
const Card = z.string().regex(/^\d{12,19}$/, 'a card number is 12 to 19 digits');

/** `POST /api/v1/orders` → 202 `{id, status: "pending"}`: the saga takes it from there. */
export const placeOrder = action('shop-orders.placeOrder', {
  input: z.object({
    items: z
      .array(
        z.object({
          productId: ProductId,
          quantity: z.number().int('a quantity is a whole number').positive('a quantity is at least 1').max(1000),
        }),
      )
      .min(1, 'an order has at least one item')
      .max(50)
      .superRefine((items, issue) => {
        const seen = new Set<string>();
        items.forEach((item, index) => {
          if (seen.has(item.productId)) {
            issue.addIssue({ code: 'custom', path: [index, 'productId'], message: 'each product once per order' });
          }
          seen.add(item.productId);
        });
      }),
    card: Card.default('4242424242424242'),
  }),
  output: z.object({ id: OrderId, status: z.literal('pending') }),
  idempotent: false,
});

export const getOrder = action('shop-orders.getOrder', {
  input: z.object({ id: OrderId }),
  output: Order,
  idempotent: true,
});

export const listUserOrders = action('shop-orders.listUserOrders', {
  input: z.object({ userId: UserId }),
  output: z.object({ orders: z.array(Order) }),
  idempotent: true,
});

/**
 * An admin's decision on an order held for review (`POST /api/v1/orders/{id}/review`): `approve`
 * charges the held payment and confirms the order, `reject` voids it and cancels the order — by the
 * review saga, after the answer (202). 409 `ORDER_NOT_ON_HOLD` for an order that is not on hold or was
 * reviewed already.
 */
export const reviewOrder = action('shop-orders.reviewOrder', {
  input: z.object({ id: OrderId, decision: z.enum(['approve', 'reject']) }),
  output: z.object({ id: OrderId, status: OrderStatus, review: z.enum(['approve', 'reject']) }),
  idempotent: false,
});

export const OrderNotOnHold = defineError('ORDER_NOT_ON_HOLD', { status: 409, retryable: false });

/** The saga's last step (service token only): the order is confirmed (charged) or on hold (held). */
export const concludeOrder = action('shop-orders.concludeOrder', {
  input: z.object({ orderId: OrderId, paymentId: z.string().uuid(), paymentStatus: z.enum(['charged', 'held']) }),
  output: z.object({ status: OrderStatus }),
  idempotent: true,
});

/**
 * The sagas' compensation, or a rejected review's end (service token only): a pending or held order is
 * canceled, after its payment is voided.
 */
export const cancelOrder = action('shop-orders.cancelOrder', {
  input: z.object({ orderId: OrderId, reason: z.string() }),
  output: z.object({ status: OrderStatus }),
  idempotent: true,
});

const OrderEventItem = z.object({ productId: ProductId, name: z.string(), quantity: z.number().int() });

/** The book's `orderQueue` message: recorded pending with the order, published through the outbox. */
export const orderCreated = event(
  'shop-orders.order_created',
  z.object({
    orderId: OrderId,
    userId: UserId,
    totalCents: z.number().int(),
    cardLast4: z.string(),
    items: z.array(OrderEventItem),
  }),
);

export const orderConfirmed = event(
  'shop-orders.order_confirmed',
  z.object({ orderId: OrderId, userId: UserId, totalCents: z.number().int(), items: z.array(OrderEventItem) }),
);

export const orderOnHold = event(
  'shop-orders.order_on_hold',
  z.object({ orderId: OrderId, userId: UserId, totalCents: z.number().int() }),
);

export const orderCanceled = event(
  'shop-orders.order_canceled',
  z.object({ orderId: OrderId, userId: UserId, reason: z.string() }),
);
