import { randomUUID } from 'node:crypto';
import { ChassisError, type Context, defineService, every, handle, isChassisError, on } from '@chassis/core';
import {
  commit,
  database,
  type EventStore,
  type NewEventOf,
  openEventStore,
  sql,
  WrongExpectedVersion,
} from '@chassis/data';
import { requestReservation } from '../../contracts/account-transactions.ts';
import { feeFor, money, toCents } from '../../contracts/common.ts';
import { chargeFailed, feeCharged, feeRefunded } from '../../contracts/fees.ts';
import { exchangeRejected, tradeExecuted } from '../../contracts/market.ts';
import { getPrice } from '../../contracts/market-data.ts';
import {
  beginPlacement,
  buyShares,
  cancelOrder,
  failStaleOrder,
  getOrder,
  OrderNotCancelable,
  orderCanceled,
  orderChanged,
  orderCompleted,
  orderCreated,
  orderFailed,
  orderRejected,
  sellShares,
} from '../../contracts/orders.ts';
import { requireAccount } from '../shared/access.ts';
import {
  evolve,
  feeChanges,
  initialState,
  isTerminal,
  type OrderEvents,
  type OrderState,
  orderEvents,
  streamOf,
  view,
} from './order.ts';

/** An event handler that decides from the order's locked state and emits only what it appends. */
const BY_STATE = { idempotent: 'with-emits' } as const;

/** How long orders keeps a quote it asked market data for. */
const QUOTE_TTL_MS = 1000;

export interface OrdersOptions {
  /** An order the exchange has not been given by then fails. Default 5 minutes (specs/simplebank.md). */
  expiryMs?: number;
  /** How far a buy's limit is above the quote (a sell's below): the walk it tolerates. Default 5%. */
  limitSlippage?: number;
  /** An order still waiting for its reservation after this long failed midway; it is failed. Default 60 s. */
  staleAfterMs?: number;
}

/**
 * Orders, event-sourced: one stream per order in this service's event store, every change appended
 * under the stream's row lock (so two handlers of one order take turns instead of conflicting) in the
 * same transaction as the events it announces (outbox). It accepts sells and buys, answers market
 * before placement (the book's "interrupt"), cancels, and follows the saga's events to a terminal status.
 */
export function ordersService(options: OrdersOptions = {}) {
  const expiryMs = options.expiryMs ?? 5 * 60_000;
  const slippage = options.limitSlippage ?? 0.05;
  const staleAfterMs = options.staleAfterMs ?? 60_000;
  let store: EventStore<OrderEvents> | undefined;

  const events = () => {
    if (!store) throw new ChassisError('UNAVAILABLE', 'The orders service is starting');
    return store;
  };

  /** The order, its stream locked until this handler's transaction ends. */
  async function load(ctx: Context, orderId: string): Promise<OrderState> {
    const trx = await database(ctx);
    // Locked as it is read: the order's other writers (a fill, a cancel, the sweep) queue behind this one.
    const { state } = await events().aggregate(streamOf(orderId), {
      initial: initialState(orderId),
      evolve,
      snapshots: false,
      lock: true,
      trx,
    });
    if (!state.created) throw new ChassisError('NOT_FOUND', `No order ${orderId}`, { data: { orderId } });
    return state;
  }

  /** The order as committed, read in one statement outside any transaction (no lock). */
  async function peek(orderId: string): Promise<OrderState> {
    const { state } = await events().aggregate(streamOf(orderId), {
      initial: initialState(orderId),
      evolve,
      snapshots: false,
    });
    if (!state.created) throw new ChassisError('NOT_FOUND', `No order ${orderId}`, { data: { orderId } });
    return state;
  }

  /**
   * Appends to the order's stream and announces the change (`order_changed`) if it changes the order as
   * the API shows it, or as `announce` says; returns the order after it.
   */
  async function record(
    ctx: Context,
    order: OrderState,
    changes: NewEventOf<OrderEvents>[],
    announce: 'if-shown-changed' | 'always' | 'never' = 'if-shown-changed',
  ): Promise<OrderState> {
    const trx = await database(ctx);
    const { events: stored } = await events().append(streamOf(order.id), changes, {
      expectedVersion: order.version === 0 ? 'no_stream' : order.version,
      trx,
    });
    const next = stored.reduce(evolve, order);
    // Read models see the order as the API shows it: steps that change nothing there are not announced.
    const shown = view(next);
    const changed = () => order.version === 0 || JSON.stringify(shown) !== JSON.stringify(view(order));
    if (announce === 'always' || (announce === 'if-shown-changed' && changed())) {
      await ctx.emit(orderChanged, { ...shown, version: next.version });
    }
    return next;
  }

  const refOf = (order: OrderState) => {
    const { accountId, side, symbol, quantity } = order.created!;
    return { orderId: order.id, accountId, side, symbol, quantity };
  };

  /** What the order's terminal events say: its reference and who placed it (absent for an order recorded before that was). */
  const endOf = (order: OrderState) => ({ ...refOf(order), placedBy: order.created!.placedBy });

  async function place(
    ctx: Context,
    input: {
      accountId: string;
      symbol: string;
      side: 'sell' | 'buy';
      quantity?: number;
      amount?: string;
      orderId?: string;
    },
  ) {
    const caller = requireAccount(ctx.user, input.accountId);
    if (input.orderId !== undefined) {
      const existing = await placedBefore(ctx, input.orderId, input.accountId);
      if (existing) return existing;
    }
    // A quote up to a second old (market data itself refreshes every second) sets the limit as well as a
    // fresh one would, within the 5% it allows: cached, it saves every order a call.
    const quote = toCents(
      (await ctx.call(getPrice, { symbol: input.symbol }, { cache: { ttlMs: QUOTE_TTL_MS } })).price,
    );
    const limit =
      input.side === 'buy' ? Math.ceil(quote * (1 + slippage)) : Math.max(1, Math.floor(quote * (1 - slippage)));
    let quantity = input.quantity ?? 0;
    if (input.amount !== undefined) {
      const amount = toCents(input.amount);
      quantity = Math.floor((amount - feeFor(amount)) / limit);
      if (quantity < 1) {
        throw new ChassisError('VALIDATION', `${input.amount} buys no ${input.symbol} at up to ${money(limit)}`, {
          data: { fields: [{ path: 'amount', message: `too small to buy one share at up to ${money(limit)}` }] },
        });
      }
    }
    // A buy holds its cost at the limit and that cost's fee; a sell the fee of its proceeds at a rise.
    const reservedCashCents =
      input.side === 'buy'
        ? quantity * limit + feeFor(quantity * limit)
        : feeFor(Math.ceil(quantity * quote * (1 + slippage)));
    const orderId = input.orderId ?? randomUUID();
    // Durable before the ledger is asked: whatever happens next, the order exists and reaches an end. One
    // statement, outside the handler's transaction (PostgreSQL commits it alone): no BEGIN and COMMIT
    // around it. Announced with its reservation below (one outbox write instead of two), or with its end
    // if it ends before that (rejected, failed, or failed by the stale sweep after a crash).
    const { events: created } = await events().append(
      streamOf(orderId),
      [
        {
          type: 'OrderCreated',
          data: {
            accountId: input.accountId,
            side: input.side,
            symbol: input.symbol,
            quantity,
            limitPriceCents: limit,
            reservedCashCents,
            expiresAt: new Date(Date.now() + expiryMs).toISOString(),
            placedBy: caller.roles.includes('system') ? caller.subject : null,
          },
        },
      ],
      { expectedVersion: 'no_stream' },
    );
    let order = created.reduce(evolve, initialState(orderId));
    try {
      await ctx.call(requestReservation, {
        orderId,
        accountId: input.accountId,
        side: input.side,
        symbol: input.symbol,
        quantity,
        cash: money(reservedCashCents),
      });
    } catch (error) {
      order = await load(ctx, orderId);
      // Failed meanwhile (the stale sweep, while the ledger was slow): it has its end, and the ledger released it.
      if (isTerminal(order.status)) throw error;
      const reason = isChassisError(error) ? error.message : 'the ledger could not reserve';
      if (isChassisError(error) && !error.retryable && error.status < 500) {
        order = await record(ctx, order, [{ type: 'OrderRejected', data: { reason } }]);
        await ctx.emit(orderRejected, { ...endOf(order), reason });
      } else {
        // The ledger may have reserved after all: failing the order releases whatever it holds.
        order = await record(ctx, order, [{ type: 'OrderFailed', data: { reason } }]);
        await ctx.emit(orderFailed, { ...endOf(order), reason });
      }
      await commit(ctx);
      throw error;
    }
    // Nobody else writes to a new order before it is announced (the stale sweep waits far longer than a
    // reservation may take): append after the version this handler wrote, without reading it again.
    order = await record(ctx, order, [{ type: 'ReservationHeld', data: {} }], 'always');
    await ctx.emit(orderCreated, {
      ...refOf(order),
      limitPrice: money(limit),
      createdAt: order.history[0]!.at,
      version: order.version,
      expiresAt: order.created!.expiresAt,
    });
    ctx.log.info({ orderId, side: input.side, symbol: input.symbol, quantity }, `${input.side} order created`);
    return { orderId, status: order.status };
  }

  /** The order placed before with the caller's id (a retry), if any: placing is idempotent by id. */
  async function placedBefore(ctx: Context, orderId: string, accountId: string) {
    const { state } = await events().aggregate(streamOf(orderId), {
      initial: initialState(orderId),
      evolve,
      snapshots: false,
      trx: await database(ctx),
    });
    // Read only: the transaction ends here, before the ledger is called.
    await commit(ctx);
    if (!state.created) return undefined;
    if (state.created.accountId !== accountId) {
      throw new ChassisError('CONFLICT', `Order ${orderId} exists for another account`, { data: { orderId } });
    }
    return { orderId, status: state.status };
  }

  /** An order the saga's events move on; an order already past that point is left as it is. */
  async function follow(
    ctx: Context,
    orderId: string,
    decide: (order: OrderState) => NewEventOf<OrderEvents>[],
    announce?: (order: OrderState) => Promise<void>,
  ): Promise<void> {
    const order = await load(ctx, orderId);
    const changes = decide(order);
    if (changes.length === 0) return;
    const next = await record(ctx, order, changes);
    await announce?.(next);
  }

  return defineService({
    name: 'orders',
    version: '0.2.0',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [getPrice, requestReservation, orderCreated, orderRejected, orderCompleted, orderFailed, orderCanceled],
    start: async (service) => {
      // No projection reads this store: a NOTIFY on every append would only wake every listening backend
      // of the database (PostgreSQL signals them all, whatever the channel), four times an order.
      store = await openEventStore(service, { schemas: orderEvents, notify: false });
    },
    schedules: [
      // Orders whose placing stopped midway (a crash between recording and reserving) are failed. One
      // instance sweeps at a time (a lease in the orders schema).
      every(
        'sweep-stale-orders',
        Math.max(1000, staleAfterMs / 2),
        async (ctx) => {
          const es = events();
          const stale = await sql<{ stream: string }>`
            select stream from ${es.table('chassis_streams')}
            where version = 1 and updated_at < now() - make_interval(secs => ${staleAfterMs / 1000})
            limit 100`.execute(es.db.kysely);
          for (const { stream } of stale.rows) {
            await ctx.call(failStaleOrder, { orderId: stream.replace(/^order-/, '') });
          }
        },
        { timeoutMs: 10_000 },
      ),
    ],
    actions: [
      handle(sellShares, (input, ctx) => place(ctx, { ...input, side: 'sell' })),
      handle(buyShares, (input, ctx) => place(ctx, { ...input, side: 'buy' })),
      handle(getOrder, async ({ orderId }, ctx) => {
        const { state } = await events().aggregate(streamOf(orderId), {
          initial: initialState(orderId),
          evolve,
          snapshots: false,
          trx: await database(ctx),
        });
        if (!state.created) throw new ChassisError('NOT_FOUND', `No order ${orderId}`, { data: { orderId } });
        requireAccount(ctx.user, state.created.accountId);
        return view(state);
      }),
      handle(cancelOrder, async ({ orderId }, ctx) => {
        let order = await load(ctx, orderId);
        requireAccount(ctx.user, order.created!.accountId);
        if (order.status === 'canceled') return view(order);
        if (order.status !== 'created' || order.placing || !order.reserved) {
          throw OrderNotCancelable(
            order.status === 'created'
              ? `Order ${orderId} is being ${order.placing ? 'placed on the exchange' : 'reserved'}; it can no longer be canceled`
              : `Order ${orderId} is ${order.status}; only an order not yet placed can be canceled`,
            { orderId, status: order.status },
          );
        }
        const reason = 'canceled by the customer';
        order = await record(ctx, order, [{ type: 'OrderCanceled', data: { reason } }]);
        await ctx.emit(orderCanceled, endOf(order));
        return view(order);
      }),
      handle(failStaleOrder, async ({ orderId }, ctx) => {
        const order = await load(ctx, orderId);
        if (order.version !== 1) return { failed: false };
        const reason = 'placing was interrupted before the ledger confirmed the reservation';
        await record(ctx, order, [{ type: 'OrderFailed', data: { reason } }]);
        await ctx.emit(orderFailed, { ...endOf(order), reason });
        ctx.log.warn({ orderId }, 'stale order failed');
        return { failed: true };
      }),
      handle(beginPlacement, async ({ orderId, announced }, ctx) => {
        // Read and appended without the stream's lock, each statement its own transaction: the append
        // succeeds only at the version read (the store checks it under the stream's row lock), so a cancel
        // or another instance's placement that came between is seen by reading again. Locked, this was a
        // transaction of three round trips (BEGIN with the read, the append, COMMIT); now it is two.
        //
        // First at the version `order_created` announced, without reading: that event is written only with
        // the order's reservation, in the same transaction, so at that version the order is reserved and not
        // yet placing, and the append — accepted only if nothing came between — is the one a read would have
        // decided: one statement in all. Refused (a cancel, or a redelivery after the placement started), or
        // expired, or not announced so (an older market), the order is read.
        if (announced && Date.parse(announced.expiresAt) > Date.now()) {
          try {
            await events().append(streamOf(orderId), [{ type: 'PlacementStarted', data: {} }], {
              expectedVersion: announced.version,
            });
            return { proceed: true, limitPrice: announced.limitPrice };
          } catch (error) {
            if (!WrongExpectedVersion.is(error)) throw error;
          }
        }
        for (let attempt = 1; ; attempt++) {
          const order = await peek(orderId);
          const limitPrice = money(order.created!.limitPriceCents);
          if (order.placing || order.status === 'placed' || order.status === 'completed') {
            return { proceed: true, limitPrice };
          }
          if (order.status !== 'created' || !order.reserved) return { proceed: false };
          if (Date.parse(order.created!.expiresAt) <= Date.now()) {
            // Failed and announced in one transaction, at the version read: a writer that came between
            // makes it WRONG_EXPECTED_VERSION, and market asks again later.
            const reason = 'expired before it could be placed on the exchange';
            const failed = await record(ctx, order, [{ type: 'OrderFailed', data: { reason } }]);
            await ctx.emit(orderFailed, { ...endOf(failed), reason });
            return { proceed: false };
          }
          try {
            await events().append(streamOf(orderId), [{ type: 'PlacementStarted', data: {} }], {
              expectedVersion: order.version,
            });
            return { proceed: true, limitPrice };
          } catch (error) {
            if (!isChassisError(error) || error.code !== 'WRONG_EXPECTED_VERSION' || attempt >= 3) throw error;
          }
        }
      }),
    ],
    // The saga's events move the order only from the state they find under its stream's lock, and
    // announce only what they append: delivered again, they find the step made and do nothing, so they need
    // no inbox row (a statement less each, three per order).
    //
    // Market's `order_placed` is not followed here: market records the exchange's answer with it in one
    // outbox write, so its fill (`trade_executed`) or refusal (`order_failed` with the exchange's id) always
    // follows, and moves the order through `placed` to its end in one transaction and one `order_changed`
    // (following it too cost every order a locked transaction, and a second announcement when it came first).
    events: [
      on(
        tradeExecuted,
        (trade, ctx) =>
          follow(
            ctx,
            trade.orderId,
            (order) => {
              if (isTerminal(order.status)) return [];
              const priceCents = toCents(trade.price);
              const completed = { type: 'OrderCompleted' as const, data: { priceCents } };
              // The ledger takes the fee as it settles this trade, from the same figures: the order shows it
              // with its completion, in the same step and announcement.
              const fee = feeChanges(order, {
                outcome: 'charged',
                feeCents: feeFor(order.created!.quantity * priceCents),
              });
              // Placed and filled at once (see `order_placed` above): the history still says both.
              if (order.status === 'created') {
                return [
                  { type: 'OrderPlaced' as const, data: { exchangeOrderId: trade.exchangeOrderId } },
                  completed,
                  ...fee,
                ];
              }
              return [completed, ...fee];
            },
            (order) => ctx.emit(orderCompleted, { ...endOf(order), price: trade.price }),
          ),
        BY_STATE,
      ),
      on(
        exchangeRejected,
        (failure, ctx) =>
          follow(
            ctx,
            failure.orderId,
            (order) => {
              if (isTerminal(order.status)) return [];
              const failed = { type: 'OrderFailed' as const, data: { reason: failure.reason } };
              // The exchange took the order and refused it afterwards: its history says it was placed, and
              // its fee is none (the ledger charges a fee only as it settles a fill).
              if (order.status === 'created' && failure.exchangeOrderId) {
                return [
                  { type: 'OrderPlaced' as const, data: { exchangeOrderId: failure.exchangeOrderId } },
                  failed,
                  ...feeChanges(order, { outcome: 'waived', feeCents: 0 }),
                ];
              }
              return [failed];
            },
            (order) => ctx.emit(orderFailed, { ...endOf(order), reason: failure.reason }),
          ),
        BY_STATE,
      ),
      on(
        feeCharged,
        (fee, ctx) =>
          follow(ctx, fee.orderId, (order) => feeChanges(order, { outcome: 'charged', feeCents: toCents(fee.fee) })),
        BY_STATE,
      ),
      on(
        chargeFailed,
        (fee, ctx) => follow(ctx, fee.orderId, (order) => feeChanges(order, { outcome: 'waived', feeCents: 0 })),
        BY_STATE,
      ),
      on(feeRefunded, (fee, ctx) =>
        follow(ctx, fee.orderId, (order) => feeChanges(order, { outcome: 'refunded', feeCents: toCents(fee.fee) })),
      ),
    ],
  });
}
