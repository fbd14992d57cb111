import { type BreakerPolicy, ChassisError, type CircuitBreaker, type Context, defineService, on } from '@chassis/core';
import { database, sql } from '@chassis/data';
import { money, toCents } from '../../contracts/common.ts';
import { exchangeRejected, orderPlaced, tradeExecuted } from '../../contracts/market.ts';
import { beginPlacement, orderCreated } from '../../contracts/orders.ts';
import { ExchangeClient, type ExchangeResponse } from './exchange-client.ts';

interface MarketTables {
  exchange_orders: {
    order_id: string;
    exchange_order_id: string;
    status: 'filled' | 'rejected';
    price_cents: number | null;
    reason: string | null;
  };
}

export interface MarketOptions {
  /** The exchange's base URL (its `POST /orders`). */
  exchangeUrl: string;
  /** How long one request to the exchange may take. Default 3000 ms. */
  timeoutMs?: number;
  /** Default: opens after 5 failures in a row, probes again after 30 s (specs/simplebank.md). */
  breaker?: BreakerPolicy;
}

type ExchangeAnswer =
  | { status: 'filled'; exchangeOrderId: string; price: string }
  | { status: 'rejected'; exchangeOrderId: string; reason: string };

/**
 * The gateway to the stock exchange. For each new order it asks orders whether it may go (a canceled
 * or expired order does not), then places it over HTTP behind a circuit breaker. While the exchange is
 * down the breaker fails fast and the order's message waits in the broker, redelivered once the
 * breaker lets a probe through: nothing is dropped. The order id is the exchange's client order id, so
 * a redelivery after a lost answer gets the first answer back and never trades twice.
 */
export function marketService(options: MarketOptions) {
  const timeoutMs = options.timeoutMs ?? 3000;
  const breakerSettings = options.breaker ?? { kind: 'consecutive', failures: 5, openMs: 30_000 };
  // The node's breaker for the exchange: its state is in chassis_circuit_breaker_state{target="exchange"},
  // the node's log and its readiness, like the breakers of actions.
  let exchangeBreaker: CircuitBreaker | undefined;
  const exchange = new ExchangeClient(options.exchangeUrl);
  const breaker = () => {
    if (!exchangeBreaker) throw new ChassisError('UNAVAILABLE', 'The market service is starting');
    return exchangeBreaker;
  };

  async function placeOnExchange(
    ctx: Context,
    order: {
      orderId: string;
      side: 'sell' | 'buy';
      symbol: string;
      quantity: number;
      limitPrice: string;
    },
  ): Promise<ExchangeAnswer> {
    return breaker().execute(async () => {
      let response: ExchangeResponse;
      try {
        // Traced: a client span, and the trace context in `traceparent` for the exchange to continue.
        response = await exchange.post(
          ctx,
          '/orders',
          {
            clientOrderId: order.orderId,
            side: order.side,
            symbol: order.symbol,
            quantity: order.quantity,
            limitPrice: order.limitPrice,
          },
          timeoutMs,
        );
      } catch (error) {
        throw new ChassisError('UNAVAILABLE', `The exchange did not answer: ${(error as Error).message}`);
      }
      if (response.status >= 500) {
        throw new ChassisError('UNAVAILABLE', `The exchange answered ${response.status}`);
      }
      const body = response.body as (ExchangeAnswer & { error?: { message: string } }) | undefined;
      if (body === undefined)
        throw new ChassisError('UNAVAILABLE', `The exchange answered ${response.status} without JSON`);
      if (response.status < 200 || response.status >= 300) {
        return { status: 'rejected', exchangeOrderId: '', reason: body.error?.message ?? `HTTP ${response.status}` };
      }
      return body;
    });
  }

  return defineService({
    name: 'market',
    version: '0.2.0',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [beginPlacement, orderPlaced, tradeExecuted, exchangeRejected],
    start: (service) => {
      exchangeBreaker = service.breaker('exchange', breakerSettings);
    },
    stop: () => exchange.close(),
    events: [
      // The exchange's answer is recorded once (the order's row) and announced only with that row: a
      // redelivery asks orders and the exchange again (both answer as the first time) and finds the row
      // there, so it announces nothing and needs no inbox row (a statement less an order).
      on(
        orderCreated,
        async (order, ctx) => {
          // Fail fast while the exchange is known to be down: the message comes back after the pause.
          breaker().failFastIfOpen();
          // The order as announced: orders starts its placement at that version without reading it first.
          const announced =
            order.version !== undefined && order.expiresAt !== undefined
              ? { version: order.version, expiresAt: order.expiresAt, limitPrice: order.limitPrice }
              : undefined;
          const { proceed, limitPrice } = await ctx.call(beginPlacement, { orderId: order.orderId, announced });
          if (!proceed || !limitPrice) {
            ctx.log.info({ orderId: order.orderId }, 'order not placed: it was canceled or expired');
            return;
          }
          const started = performance.now();
          const answer = await placeOnExchange(ctx, { ...order, limitPrice });
          ctx.log.info(
            { orderId: order.orderId, status: answer.status, ms: Math.round(performance.now() - started) },
            'order placed on the exchange',
          );
          // Written as text, not built: Kysely's builder cost more than the statement.
          const { rows: recorded } = await sql<Pick<MarketTables['exchange_orders'], 'order_id'>>`
            insert into ${sql.id('market', 'exchange_orders')} (order_id, exchange_order_id, status, price_cents, reason)
            values (${order.orderId}, ${answer.exchangeOrderId}, ${answer.status},
              ${answer.status === 'filled' ? toCents(answer.price) : null},
              ${answer.status === 'rejected' ? answer.reason : null})
            on conflict do nothing
            returning order_id`.execute(await database<MarketTables>(ctx));
          if (recorded.length === 0) return;
          const ref = {
            orderId: order.orderId,
            accountId: order.accountId,
            side: order.side,
            symbol: order.symbol,
            quantity: order.quantity,
          };
          if (answer.status === 'rejected' && !answer.exchangeOrderId) {
            await ctx.emit(exchangeRejected, { ...ref, reason: answer.reason });
            return;
          }
          const price = answer.status === 'filled' ? answer.price : limitPrice;
          await ctx.emit(orderPlaced, {
            ...ref,
            exchangeOrderId: answer.exchangeOrderId,
            notional: money(order.quantity * toCents(price)),
          });
          if (answer.status === 'filled') {
            await ctx.emit(tradeExecuted, { ...ref, exchangeOrderId: answer.exchangeOrderId, price: answer.price });
          } else {
            await ctx.emit(exchangeRejected, {
              ...ref,
              exchangeOrderId: answer.exchangeOrderId,
              reason: answer.reason,
            });
          }
        },
        { idempotent: 'with-emits' },
      ),
    ],
  });
}
