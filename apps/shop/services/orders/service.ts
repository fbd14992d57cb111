import { createHash, randomUUID } from 'node:crypto';
import {
  ChassisError,
  type Context,
  defineService,
  handle,
  on,
  type PayloadOf,
  requireIdentity,
  requireRole,
  systemToken,
} from '@chassis/core';
import { database, defineSaga, type RunSagasOptions, runSagas, type SagaRunner, startSaga } from '@chassis/data';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { fromCents } from '../../contracts/common.ts';
import {
  cancelOrder,
  concludeOrder,
  getOrder,
  listUserOrders,
  OrderNotFound,
  OrderNotOnHold,
  orderCanceled,
  orderConfirmed,
  orderCreated,
  orderOnHold,
  placeOrder,
  reviewOrder,
} from '../../contracts/orders.ts';
import { capturePayment, chargePayment, PaymentDeclined, voidPayment } from '../../contracts/payments.ts';
import { getProducts, ProductNotFound } from '../../contracts/products.ts';
import { requireSelf, requireSystem } from '../shared/access.ts';

interface OrdersTables {
  orders: {
    id: string;
    user_id: string;
    status: 'pending' | 'confirmed' | 'on_hold' | 'canceled';
    total_cents: number;
    card_last4: string;
    payment_id: string | null;
    reason: string | null;
    review: 'approve' | 'reject' | null;
    created_at: Date;
    updated_at: Date;
  };
  order_items: { order_id: string; product_id: string; name: string; quantity: number; unit_price_cents: number };
}

type Db = Kysely<OrdersTables>;

/** The review saga's id of an order: one per order, whoever asks, so an order is reviewed once. */
function reviewSagaId(orderId: string): string {
  const hex = createHash('sha1').update(`${orderId}:review`).digest('hex');
  const variant = ((Number.parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
type OrderRow = OrdersTables['orders'];
type ItemRow = OrdersTables['order_items'];

export interface OrdersOptions {
  /** The HS256 secret: the saga's steps call payments and orders under a token of the service's own. */
  secret: string;
  /** The saga runner's settings (lease, sweep; tests add `onBoundary` to crash it between steps). */
  sagas?: RunSagasOptions;
}

function view(order: OrderRow, items: ItemRow[]) {
  return {
    id: order.id,
    userId: order.user_id,
    status: order.status,
    items: items.map((item) => ({
      productId: item.product_id,
      name: item.name,
      quantity: item.quantity,
      unitPrice: fromCents(Number(item.unit_price_cents)),
      lineTotal: fromCents(Number(item.unit_price_cents) * item.quantity),
    })),
    total: fromCents(Number(order.total_cents)),
    paymentId: order.payment_id,
    reason: order.reason,
    review: order.review,
    createdAt: new Date(order.created_at).toISOString(),
    updatedAt: new Date(order.updated_at).toISOString(),
  };
}

async function readOrders(db: Db, orders: OrderRow[]) {
  if (orders.length === 0) return [];
  const items = await db
    .selectFrom('order_items')
    .selectAll()
    .where(
      'order_id',
      'in',
      orders.map((order) => order.id),
    )
    .orderBy('name')
    .execute();
  return orders.map((order) =>
    view(
      order,
      items.filter((item) => item.order_id === order.id),
    ),
  );
}

async function itemsOf(db: Db, orderId: string) {
  const items = await db
    .selectFrom('order_items')
    .select(['product_id', 'name', 'quantity'])
    .where('order_id', '=', orderId)
    .execute();
  return items.map((item) => ({ productId: item.product_id, name: item.name, quantity: item.quantity }));
}

/**
 * Orders (their own schema) and the order saga, orchestrated by the chassis's saga runner:
 *
 * 1. `POST /api/v1/orders` records the order `pending` and `order_created` in one transaction (the
 *    outbox): there is an order before anything can be paid.
 * 2. The consumer of `order_created` (this service, off the broker — the book's `orderQueue`) starts
 *    the saga for it, keyed by the order id: a redelivered event starts nothing twice.
 * 3. The saga: `open` (nothing to do; its compensation cancels the order), `charge` (payments charges
 *    the order once, or holds it when over 10,000.00, or the card is declined; its compensation voids
 *    the payment), `conclude` (the order becomes `confirmed` or `on_hold`).
 *
 * A payment taken without its order placed cannot happen: the order exists first; the charge is keyed
 * by it; a crash between charging and concluding resumes the saga (another node, or this one
 * restarted), which concludes; and a saga that cannot conclude voids the payment before it cancels the
 * order. Each step's calls are idempotent by the order id, so a retry or a resume never charges twice.
 */
export function ordersService(options: OrdersOptions) {
  const ownToken = systemToken(options.secret, 'shop-orders');
  let runner: SagaRunner | undefined;

  const orderSaga = defineSaga({
    name: 'place-order',
    data: z.object({
      orderId: z.string().uuid(),
      userId: z.string().uuid(),
      amountCents: z.number().int().positive(),
      cardLast4: z.string(),
      paymentId: z.string().uuid().optional(),
      paymentStatus: z.enum(['charged', 'held']).optional(),
    }),
    steps: [
      {
        name: 'open',
        async run() {
          // The order was recorded pending before the saga started; this step is here for its undo.
        },
        async compensate(order, step) {
          const failed = await runner?.get(step.sagaId);
          const reason = failed?.error?.message ?? 'the order could not be completed';
          await step.call(cancelOrder, { orderId: order.orderId, reason }, { auth: await ownToken() });
        },
      },
      {
        name: 'charge',
        retry: { maxAttempts: 5, initialDelayMs: 200, maxDelayMs: 5000 },
        async run(order, step) {
          const payment = await step.call(
            chargePayment,
            {
              orderId: order.orderId,
              userId: order.userId,
              amountCents: order.amountCents,
              cardLast4: order.cardLast4,
            },
            { auth: await ownToken() },
          );
          if (payment.status !== 'charged' && payment.status !== 'held') {
            throw PaymentDeclined(`The payment was ${payment.status}: the card was refused`, {
              orderId: order.orderId,
            });
          }
          return { paymentId: payment.paymentId, paymentStatus: payment.status };
        },
        async compensate(order, step) {
          await step.call(voidPayment, { orderId: order.orderId }, { auth: await ownToken() });
        },
      },
      {
        name: 'conclude',
        retry: { maxAttempts: 10, initialDelayMs: 200, maxDelayMs: 10_000 },
        async run(order, step) {
          if (!order.paymentId || !order.paymentStatus) {
            throw new ChassisError('INTERNAL', `The saga of order ${order.orderId} has no payment to conclude with`);
          }
          await step.call(
            concludeOrder,
            { orderId: order.orderId, paymentId: order.paymentId, paymentStatus: order.paymentStatus },
            { auth: await ownToken() },
          );
        },
      },
    ],
  });

  /**
   * An admin's decision on a held order, as a saga of its own: `open` (its compensation cancels the
   * order), `settle-payment` (approve: charge the held payment, undone by a void; reject: void it),
   * `conclude` (approve: confirmed; reject: canceled). The payment is charged before the order is
   * confirmed and voided before it is canceled, as in the order saga.
   */
  const reviewSaga = defineSaga({
    name: 'review-order',
    data: z.object({
      orderId: z.string().uuid(),
      decision: z.enum(['approve', 'reject']),
      paymentId: z.string().uuid().optional(),
    }),
    steps: [
      {
        name: 'open',
        async run() {
          // The decision was recorded with the start; this step is here for its undo.
        },
        async compensate(review, step) {
          const failed = await runner?.get(step.sagaId);
          const reason = failed?.error?.message ?? 'the review could not be completed';
          await step.call(cancelOrder, { orderId: review.orderId, reason }, { auth: await ownToken() });
        },
      },
      {
        name: 'settle-payment',
        retry: { maxAttempts: 10, initialDelayMs: 200, maxDelayMs: 10_000 },
        async run(review, step) {
          const auth = await ownToken();
          if (review.decision === 'reject') {
            await step.call(voidPayment, { orderId: review.orderId }, { auth });
            return;
          }
          const payment = await step.call(capturePayment, { orderId: review.orderId }, { auth });
          return { paymentId: payment.paymentId };
        },
        async compensate(review, step) {
          await step.call(voidPayment, { orderId: review.orderId }, { auth: await ownToken() });
        },
      },
      {
        name: 'conclude',
        retry: { maxAttempts: 10, initialDelayMs: 200, maxDelayMs: 10_000 },
        async run(review, step) {
          const auth = await ownToken();
          if (review.decision === 'reject') {
            await step.call(cancelOrder, { orderId: review.orderId, reason: 'refused on review' }, { auth });
            return;
          }
          if (!review.paymentId) {
            throw new ChassisError('INTERNAL', `The review of order ${review.orderId} has no payment to conclude with`);
          }
          await step.call(
            concludeOrder,
            { orderId: review.orderId, paymentId: review.paymentId, paymentStatus: 'charged' },
            { auth },
          );
        },
      },
    ],
  });

  async function startOrderSaga(order: PayloadOf<typeof orderCreated>, ctx: Context) {
    await database<OrdersTables>(ctx);
    await startSaga(
      ctx,
      orderSaga,
      { orderId: order.orderId, userId: order.userId, amountCents: order.totalCents, cardLast4: order.cardLast4 },
      { id: order.orderId },
    );
  }

  return defineService({
    name: 'shop-orders',
    version: '0.1.0',
    description: 'Orders and the order saga: payment, fraud hold, confirmation or cancelation',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [
      getProducts,
      chargePayment,
      capturePayment,
      voidPayment,
      orderCreated,
      orderConfirmed,
      orderOnHold,
      orderCanceled,
    ],
    start: async (service) => {
      runner = await runSagas(service, [orderSaga, reviewSaga], options.sagas);
    },
    actions: [
      handle(placeOrder, async (input, ctx) => {
        const user = requireIdentity(ctx.user);
        // Priced by the catalogue before the transaction opens.
        const { products } = await ctx.call(getProducts, { ids: input.items.map((item) => item.productId) });
        const byId = new Map(products.map((product) => [product.id, product]));
        const missing = input.items
          .map((item, index) => ({ item, index }))
          .filter(({ item }) => !byId.has(item.productId));
        if (missing.length > 0) {
          throw ProductNotFound(`No product ${missing.map(({ item }) => item.productId).join(', ')}`, {
            fields: missing.map(({ item, index }) => ({
              path: `items.${index}.productId`,
              message: `no product ${item.productId}`,
              code: 'not_found',
            })),
          });
        }
        const items: ItemRow[] = [];
        const id = randomUUID();
        for (const item of input.items) {
          const product = byId.get(item.productId)!;
          items.push({
            order_id: id,
            product_id: product.id,
            name: product.name,
            quantity: item.quantity,
            unit_price_cents: Math.round(product.price * 100),
          });
        }
        const total = items.reduce((sum, item) => sum + item.unit_price_cents * item.quantity, 0);
        const now = new Date();
        const db = await database<OrdersTables>(ctx);
        await db
          .insertInto('orders')
          .values({
            id,
            user_id: user.subject,
            status: 'pending',
            total_cents: total,
            card_last4: input.card.slice(-4),
            payment_id: null,
            reason: null,
            review: null,
            created_at: now,
            updated_at: now,
          })
          .execute();
        await db.insertInto('order_items').values(items).execute();
        await ctx.emit(orderCreated, {
          orderId: id,
          userId: user.subject,
          totalCents: total,
          cardLast4: input.card.slice(-4),
          items: items.map((item) => ({ productId: item.product_id, name: item.name, quantity: item.quantity })),
        });
        return { id, status: 'pending' as const };
      }),
      handle(getOrder, async ({ id }, ctx) => {
        const db = await database<OrdersTables>(ctx);
        const order = await db.selectFrom('orders').selectAll().where('id', '=', id).executeTakeFirst();
        if (!order) throw OrderNotFound(`No order ${id}`, { id });
        requireSelf(ctx.user, order.user_id, 'An order');
        return (await readOrders(db, [order]))[0]!;
      }),
      handle(listUserOrders, async ({ userId }, ctx) => {
        requireSelf(ctx.user, userId, 'The orders');
        const db = await database<OrdersTables>(ctx);
        const orders = await db
          .selectFrom('orders')
          .selectAll()
          .where('user_id', '=', userId)
          .orderBy('created_at', 'desc')
          .limit(100)
          .execute();
        return { orders: await readOrders(db, orders) };
      }),
      handle(reviewOrder, async ({ id, decision }, ctx) => {
        requireRole(ctx.user, 'admin');
        const db = await database<OrdersTables>(ctx);
        const held = await db
          .updateTable('orders')
          .set({ review: decision, updated_at: new Date() })
          .where('id', '=', id)
          .where('status', '=', 'on_hold')
          .where('review', 'is', null)
          .returning('id')
          .executeTakeFirst();
        if (!held) {
          const order = await db
            .selectFrom('orders')
            .select(['status', 'review'])
            .where('id', '=', id)
            .executeTakeFirst();
          if (!order) throw OrderNotFound(`No order ${id}`, { id });
          throw OrderNotOnHold(
            order.review
              ? `Order ${id} was reviewed already (${order.review})`
              : `Order ${id} is ${order.status}: only an order on hold is reviewed`,
            { id, status: order.status },
          );
        }
        await startSaga(ctx, reviewSaga, { orderId: id, decision }, { id: reviewSagaId(id) });
        return { id, status: 'on_hold' as const, review: decision };
      }),
      handle(concludeOrder, async ({ orderId, paymentId, paymentStatus }, ctx) => {
        requireSystem(ctx.user, 'conclude orders');
        const db = await database<OrdersTables>(ctx);
        const target: 'confirmed' | 'on_hold' = paymentStatus === 'charged' ? 'confirmed' : 'on_hold';
        const order = await db
          .updateTable('orders')
          .set({ status: target, payment_id: paymentId, updated_at: new Date() })
          .where('id', '=', orderId)
          // Pending, after its first charge; or held, charged once an admin approved it.
          .where((eb) =>
            eb.or([eb('status', '=', 'pending'), eb.and([eb('status', '=', 'on_hold'), eb('review', '=', 'approve')])]),
          )
          .returning(['user_id', 'total_cents'])
          .executeTakeFirst();
        if (!order) {
          const now = await db.selectFrom('orders').select('status').where('id', '=', orderId).executeTakeFirst();
          if (now?.status === target) return { status: target };
          // Not retryable: the saga compensates (voids the payment) rather than insisting.
          throw new ChassisError('CONFLICT', `Order ${orderId} is ${now?.status ?? 'missing'}: it cannot be ${target}`);
        }
        const totalCents = Number(order.total_cents);
        if (target === 'confirmed') {
          await ctx.emit(orderConfirmed, {
            orderId,
            userId: order.user_id,
            totalCents,
            items: await itemsOf(db, orderId),
          });
        } else {
          await ctx.emit(orderOnHold, { orderId, userId: order.user_id, totalCents });
        }
        return { status: target };
      }),
      handle(cancelOrder, async ({ orderId, reason }, ctx) => {
        requireSystem(ctx.user, 'cancel orders');
        const db = await database<OrdersTables>(ctx);
        const order = await db
          .updateTable('orders')
          .set({ status: 'canceled', reason, updated_at: new Date() })
          .where('id', '=', orderId)
          .where('status', 'in', ['pending', 'on_hold'])
          .returning(['user_id'])
          .executeTakeFirst();
        if (order) {
          await ctx.emit(orderCanceled, { orderId, userId: order.user_id, reason });
          return { status: 'canceled' as const };
        }
        const now = await db.selectFrom('orders').select('status').where('id', '=', orderId).executeTakeFirst();
        return { status: now?.status ?? 'canceled' };
      }),
    ],
    events: [
      // The book's `orderQueue` consumer: the order's saga starts off the broker, once per order.
      on(orderCreated, startOrderSaga, { idempotent: true }),
    ],
  });
}
