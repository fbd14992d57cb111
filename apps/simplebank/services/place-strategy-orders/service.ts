import { createHash, randomUUID } from 'node:crypto';
import { ChassisError, type Context, defineService, handle, isChassisError, on, systemToken } from '@chassis/core';
import { database, defineSaga, runSagas, startSaga } from '@chassis/data';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { AccountId, Money, money, OrderId, StockSymbol, toCents } from '../../contracts/common.ts';
import { buyShares, orderCanceled, orderCompleted, orderFailed, orderRejected } from '../../contracts/orders.ts';
import { getPayment, paymentCompleted } from '../../contracts/payments.ts';
import { getInvestment, getStrategy, invest, investmentFunded, PaymentMismatch } from '../../contracts/strategies.ts';
import { requireAccount } from '../shared/access.ts';

interface InvestmentTables {
  investments: {
    id: string;
    strategy_id: string;
    account_id: string;
    amount_cents: number;
    payment_id: string;
    status: 'awaiting_payment' | 'placing' | 'completed' | 'partially_completed' | 'failed';
    created_at: Date;
  };
  investment_orders: {
    investment_id: string;
    symbol: string;
    amount_cents: number;
    order_id: string;
    status: string;
    reason: string | null;
  };
}

type Db = Kysely<InvestmentTables>;

const TERMINAL_ORDER = ['completed', 'failed', 'rejected', 'canceled'];

/** This service's name: the subject of its token, so the `placedBy` of the orders it places. */
const SERVICE = 'place-strategy-orders';

/** The id of an allocation's buy order: the same for every attempt of the step, so it buys once. */
function allocationOrderId(investmentId: string, symbol: string): string {
  const hex = createHash('sha1').update(`${investmentId}:${symbol}`).digest('hex');
  const variant = ((Number.parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * The investment saga, orchestrated (the book's place-strategy-orders): an investment waits for its
 * payment (`payment_completed`), then places one buy order per allocation of the strategy for its
 * share of the amount, follows each order to its end, and marks the investment completed, partially
 * completed or failed. It places the orders under its own token (role `system`): a customer's token
 * may have expired by the time the payment completes.
 *
 * The placing is a saga of the chassis's engine (`placeOrders`, run with `runSagas`): started in the
 * transaction that funds the investment, run as soon as it commits, its step retried with backoff
 * (and resumed by another node, or this one restarted, if the node stops). Following the orders to
 * their end is the orders' events' work: the engine has no step that waits for an event.
 */
export function placeStrategyOrdersService(options: { secret: string }) {
  const ownToken = systemToken(options.secret, SERVICE);

  /**
   * Places the investment's buy orders, each under the id derived for its allocation (so an attempt
   * after a lost reply or a restart finds the order placed before rather than buying twice), then
   * records what each placing said and concludes the investment if every order has already ended.
   * An order refused for good (a business error) is recorded rejected; anything else (the orders
   * service unavailable, a timeout) fails the attempt, which the runner retries with backoff.
   */
  const placeOrders = defineSaga({
    name: 'place-strategy-orders',
    data: z.object({
      investmentId: z.string().uuid(),
      accountId: AccountId,
      orders: z.array(z.object({ symbol: StockSymbol, amount: Money, orderId: OrderId })),
    }),
    steps: [
      {
        name: 'place-orders',
        // Ten attempts, up to a minute or so of backoff between them, before the saga gives up (then it
        // ends `compensated` with the error in its history, for an operator: there is no order to undo).
        retry: { maxAttempts: 10, initialDelayMs: 200, maxDelayMs: 20_000 },
        timeoutMs: 60_000,
        async run(funded, step) {
          const auth = await ownToken();
          const outcomes: { orderId: string; status: string; reason: string | null }[] = [];
          for (const order of funded.orders) {
            try {
              const placed = await step.call(
                buyShares,
                { accountId: funded.accountId, symbol: order.symbol, amount: order.amount, orderId: order.orderId },
                { auth },
              );
              outcomes.push({ orderId: order.orderId, status: placed.status, reason: null });
            } catch (error) {
              if (!isChassisError(error) || error.retryable || error.status >= 500) throw error;
              outcomes.push({ orderId: order.orderId, status: 'rejected', reason: error.message });
            }
          }
          await (step.db as unknown as Db).transaction().execute(async (trx) => {
            for (const outcome of outcomes) {
              await trx
                .updateTable('investment_orders')
                .set({ status: outcome.status, reason: outcome.reason })
                .where('order_id', '=', outcome.orderId)
                .where('status', '=', 'pending')
                .execute();
            }
            await conclude(trx, funded.investmentId);
          });
        },
      },
    ],
  });

  async function read(db: Db, id: string) {
    const investment = await db.selectFrom('investments').selectAll().where('id', '=', id).executeTakeFirst();
    if (!investment) throw new ChassisError('NOT_FOUND', `No investment ${id}`, { data: { id } });
    const orders = await db
      .selectFrom('investment_orders')
      .selectAll()
      .where('investment_id', '=', id)
      .orderBy('symbol')
      .execute();
    return {
      id: investment.id,
      strategyId: investment.strategy_id,
      accountId: investment.account_id,
      amount: money(Number(investment.amount_cents)),
      paymentId: investment.payment_id,
      status: investment.status,
      orders: orders.map((order) => ({
        symbol: order.symbol,
        amount: money(Number(order.amount_cents)),
        orderId: order.status === 'pending' ? null : order.order_id,
        status: order.status,
        reason: order.reason,
      })),
      createdAt: new Date(investment.created_at).toISOString(),
    };
  }

  /** The investment is paid for: announce it and start placing its orders once this commits. */
  async function fund(ctx: Context, db: Db, investmentId: string) {
    const orders = await db
      .selectFrom('investment_orders')
      .select(['symbol', 'amount_cents', 'order_id'])
      .where('investment_id', '=', investmentId)
      .execute();
    const investment = await db
      .selectFrom('investments')
      .select('account_id')
      .where('id', '=', investmentId)
      .executeTakeFirstOrThrow();
    const funded = {
      investmentId,
      accountId: investment.account_id,
      orders: orders.map((o) => ({ symbol: o.symbol, amount: money(Number(o.amount_cents)), orderId: o.order_id })),
    };
    await ctx.emit(investmentFunded, funded);
    await startSaga(ctx, placeOrders, funded, { id: investmentId });
  }

  /** An order of an investment ended: record it, and end the investment once all its orders have. */
  async function follow(
    ctx: Context,
    order: { orderId: string; placedBy?: string | null | undefined },
    status: string,
    reason: string | null,
  ) {
    // Most orders are customers' own: their ends say who placed them, and need no look at this service's
    // tables (nor a transaction). An end that does not say (an order recorded before it did) is looked up.
    if (order.placedBy !== undefined && order.placedBy !== SERVICE) return;
    const orderId = order.orderId;
    const db = await database<InvestmentTables>(ctx);
    const row = await db
      .updateTable('investment_orders')
      .set({ status, reason })
      .where('order_id', '=', orderId)
      .where('status', 'not in', TERMINAL_ORDER)
      .returning('investment_id')
      .executeTakeFirst();
    if (row) await conclude(db, row.investment_id);
  }

  async function conclude(db: Db, investmentId: string) {
    // Under the investment's row lock: two orders ending at once conclude it once.
    await db.selectFrom('investments').select('id').where('id', '=', investmentId).forUpdate().execute();
    const orders = await db
      .selectFrom('investment_orders')
      .select('status')
      .where('investment_id', '=', investmentId)
      .execute();
    if (orders.some((order) => !TERMINAL_ORDER.includes(order.status))) return;
    const completed = orders.filter((order) => order.status === 'completed').length;
    const status = completed === orders.length ? 'completed' : completed > 0 ? 'partially_completed' : 'failed';
    await db
      .updateTable('investments')
      .set({ status })
      .where('id', '=', investmentId)
      .where('status', '=', 'placing')
      .execute();
  }

  return defineService({
    name: SERVICE,
    version: '0.1.0',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [getStrategy, getPayment, buyShares, investmentFunded],
    start: async (service) => {
      await runSagas(service, [placeOrders]);
    },
    actions: [
      handle(invest, async (input, ctx) => {
        requireAccount(ctx.user, input.destinationAccountId);
        // Both asked before this service's transaction opens (one PGlite connection in the embedded default).
        const strategy = await ctx.call(getStrategy, { id: input.strategyId });
        const payment = await ctx.call(getPayment, { paymentId: input.paymentId });
        if (payment.accountId !== input.destinationAccountId || toCents(payment.amount) < toCents(input.amount)) {
          throw PaymentMismatch(
            `Payment ${input.paymentId} is ${payment.amount} into account ${payment.accountId}: it does not fund ${input.amount} into ${input.destinationAccountId}`,
            { paymentId: input.paymentId },
          );
        }
        const db = await database<InvestmentTables>(ctx);
        const existing = await db
          .selectFrom('investments')
          .select('id')
          .where('payment_id', '=', input.paymentId)
          .executeTakeFirst();
        if (existing) return read(db, existing.id);
        const id = randomUUID();
        const amount = toCents(input.amount);
        const paid = payment.status === 'completed';
        await db
          .insertInto('investments')
          .values({
            id,
            strategy_id: strategy.id,
            account_id: input.destinationAccountId,
            amount_cents: amount,
            payment_id: input.paymentId,
            status: paid ? 'placing' : 'awaiting_payment',
            created_at: new Date(),
          })
          .execute();
        // Each allocation's share, in whole cents; what rounding leaves goes to the last.
        let left = amount;
        const allocations = strategy.assets.map((asset, index) => {
          const share = index === strategy.assets.length - 1 ? left : Math.floor((amount * asset.percentage) / 100);
          left -= share;
          return {
            investment_id: id,
            symbol: asset.assetId,
            amount_cents: share,
            order_id: allocationOrderId(id, asset.assetId),
            status: 'pending',
            reason: null,
          };
        });
        await db.insertInto('investment_orders').values(allocations).execute();
        if (paid) await fund(ctx, db, id);
        return read(db, id);
      }),
      handle(getInvestment, async ({ id }, ctx) => {
        const db = await database<InvestmentTables>(ctx);
        const investment = await read(db, id);
        requireAccount(ctx.user, investment.accountId);
        return investment;
      }),
    ],
    events: [
      on(paymentCompleted, async (payment, ctx) => {
        const db = await database<InvestmentTables>(ctx);
        const funded = await db
          .updateTable('investments')
          .set({ status: 'placing' })
          .where('payment_id', '=', payment.paymentId)
          .where('status', '=', 'awaiting_payment')
          .returning('id')
          .executeTakeFirst();
        if (funded) await fund(ctx, db, funded.id);
      }),
      // Each order's end moves its row out of a non-terminal status once, and the investment out of
      // `placing` once: delivered again, they change nothing, so they need no inbox row (a statement less
      // for every order the bank completes, strategy's or not).
      on(orderCompleted, (order, ctx) => follow(ctx, order, 'completed', null), {
        name: 'order-completed',
        idempotent: true,
      }),
      on(orderFailed, (order, ctx) => follow(ctx, order, 'failed', order.reason), {
        name: 'order-failed',
        idempotent: true,
      }),
      on(orderRejected, (order, ctx) => follow(ctx, order, 'rejected', order.reason), {
        name: 'order-rejected',
        idempotent: true,
      }),
      on(orderCanceled, (order, ctx) => follow(ctx, order, 'canceled', null), {
        name: 'order-canceled',
        idempotent: true,
      }),
    ],
  });
}
