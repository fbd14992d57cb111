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
          const db = await database<ReadModel>(ctx);
          const row = {
            order_id: order.id,
            account_id: order.accountId,
            side: order.side,
            symbol: order.symbol,
            quantity: order.quantity,
            status: order.status,
            price_cents: order.price === null ? null : toCents(order.price),
            fee_cents: order.fee === null ? null : toCents(order.fee),
            reason: order.reason,
            history: JSON.stringify(order.history),
            version: order.version,
            created_at: order.history[0]?.at ?? new Date().toISOString(),
          };
          // A later change takes the row as this one would have inserted it (`excluded`), all but its id,
          // account and creation: each value is sent and parsed once, not twice (the history, jsonb, the largest).
          await db
            .insertInto('order_summaries')
            .values(row)
            .onConflict((oc) =>
              oc
                .column('order_id')
                .doUpdateSet((eb) => ({
                  side: eb.ref('excluded.side'),
                  symbol: eb.ref('excluded.symbol'),
                  quantity: eb.ref('excluded.quantity'),
                  status: eb.ref('excluded.status'),
                  price_cents: eb.ref('excluded.price_cents'),
                  fee_cents: eb.ref('excluded.fee_cents'),
                  reason: eb.ref('excluded.reason'),
                  history: eb.ref('excluded.history'),
                  version: eb.ref('excluded.version'),
                }))
                .whereRef('order_summaries.version', '<', 'excluded.version'),
            )
            .execute();
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
