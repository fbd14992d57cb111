import { defineService, handle, on, requireRole } from '@chassis/core';
import { database, sql } from '@chassis/data';
import { money, toCents } from '../../contracts/common.ts';
import { feeReport, listOrders } from '../../contracts/customer-orders.ts';
import { orderChanged } from '../../contracts/orders.ts';
import { requireAccount } from '../shared/access.ts';

interface ReadModel {
  order_summaries: {
    order_id: string;
    account_id: string;
    side: 'sell' | 'buy';
    symbol: string;
    quantity: number;
    status: 'created' | 'placed' | 'completed' | 'rejected' | 'failed' | 'canceled';
    price_cents: number | null;
    fee_cents: number | null;
    reason: string | null;
    history: string;
    version: number;
    created_at: string;
  };
}

/**
 * Customer orders: the query side of orders (CQRS). It keeps one row per order from `order_changed`,
 * which carries the whole order and its stream version, so it is rebuilt by replaying the changes and
 * never needs to ask orders. Lists an account's orders and reports fees.
 */
export function customerOrdersService() {
  return defineService({
    name: 'customer-orders',
    version: '0.1.0',
    migrations: new URL('./migrations/', import.meta.url),
    events: [
      on(
        orderChanged,
        async (order, ctx) => {
          // A later change takes the row as this one would have inserted it (`excluded`), all but its id,
          // account and creation. Written as text, not built: Kysely's builder, its plugins' walks and its
          // compiler cost more than the statement itself, twice an order.
          await sql`
            insert into ${sql.id('customer-orders', 'order_summaries')} as s
              (order_id, account_id, side, symbol, quantity, status, price_cents, fee_cents, reason, history, version,
                created_at)
            values (${order.id}, ${order.accountId}, ${order.side}, ${order.symbol}, ${order.quantity}, ${order.status},
              ${order.price === null ? null : toCents(order.price)}, ${order.fee === null ? null : toCents(order.fee)},
              ${order.reason}, ${JSON.stringify(order.history)}, ${order.version},
              ${order.history[0]?.at ?? new Date().toISOString()})
            on conflict (order_id) do update
              set side = excluded.side, symbol = excluded.symbol, quantity = excluded.quantity, status = excluded.status,
                price_cents = excluded.price_cents, fee_cents = excluded.fee_cents, reason = excluded.reason,
                history = excluded.history, version = excluded.version
              where s.version < excluded.version`.execute(await database(ctx));
        },
        // A versioned upsert: the same change delivered again matches no row to update. One statement
        // that locks only its order's row: the changes in flight together commit as one transaction.
        { idempotent: true, groupCommit: true },
      ),
    ],
    actions: [
      handle(listOrders, async ({ accountId, page, size }, ctx) => {
        requireAccount(ctx.user, accountId);
        const db = await database<ReadModel>(ctx);
        const rows = await db
          .selectFrom('order_summaries')
          .selectAll()
          .where('account_id', '=', accountId)
          .orderBy('created_at', 'desc')
          .orderBy('order_id')
          .limit(size)
          .offset((page - 1) * size)
          .execute();
        const orders = rows.map((row) => ({
          id: row.order_id,
          accountId: row.account_id,
          side: row.side,
          symbol: row.symbol,
          quantity: Number(row.quantity),
          status: row.status,
          price: row.price_cents === null ? null : money(Number(row.price_cents)),
          fee: row.fee_cents === null ? null : money(Number(row.fee_cents)),
          reason: row.reason,
          history: typeof row.history === 'string' ? JSON.parse(row.history) : row.history,
        }));
        return { accountId, page, size, orders };
      }),
      handle(feeReport, async ({ groupBy }, ctx) => {
        requireRole(ctx.user, 'admin');
        const db = await database<ReadModel>(ctx);
        const key = groupBy === 'symbol' ? 'symbol' : 'account_id';
        const rows = await db
          .selectFrom('order_summaries')
          .select([
            sql<string>`${sql.ref(key)}`.as('key'),
            sql<number>`count(*)`.as('orders'),
            sql<number>`coalesce(sum(fee_cents), 0)`.as('fees'),
          ])
          .where('fee_cents', '>', 0)
          .groupBy(key)
          .orderBy(key)
          .execute();
        const total = rows.reduce((sum, row) => sum + Number(row.fees), 0);
        return {
          groupBy,
          rows: rows.map((row) => ({ key: row.key, orders: Number(row.orders), fees: money(Number(row.fees)) })),
          total: money(total),
        };
      }),
    ],
  });
}
