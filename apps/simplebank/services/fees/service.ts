import { type Context, defineService, on, systemToken } from '@chassis/core';
import { database, sql } from '@chassis/data';
import type { Generated } from 'kysely';
import { refundFee } from '../../contracts/account-transactions.ts';
import { toCents } from '../../contracts/common.ts';
import { feeRefunded } from '../../contracts/fees.ts';
import { orderCanceled, orderFailed } from '../../contracts/orders.ts';

interface FeesTables {
  fees: {
    order_id: string;
    account_id: string;
    symbol: string;
    fee_cents: number;
    status: 'charged' | 'refunded' | 'voided' | 'waived';
    updated_at: Generated<Date>;
  };
}

interface OrderRef {
  orderId: string;
  accountId: string;
  symbol: string;
}

/**
 * Fees: 0.1% of an order's notional, at least 1.00 (`feeFor`). The ledger takes the fee as it settles
 * the trade (the fill fixes the notional), in the settlement's own statement, and orders shows it with
 * the order's completion: no order waits on this service, and an order that fails before it fills was
 * never charged. What is left here is the compensation of fees charged on placement, as earlier
 * versions did (an order placed then, failed or canceled after): the ledger decides under the account's
 * lock whether a refund is due (once per order; a refund before any charge voids the fee) — this
 * service asks it first, holding no transaction while it does — then records the outcome and announces
 * a refund once.
 */
export function feesService(options: { secret: string }) {
  // The ledger refunds fees for the bank's services only: these calls carry its own token.
  const ownToken = systemToken(options.secret, 'fees');
  return defineService({
    name: 'fees',
    version: '0.2.0',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [refundFee, feeRefunded],
    events: [
      on(orderFailed, async (order, ctx) => refund(order, ctx, await ownToken()), { name: 'refund-failed' }),
      on(orderCanceled, async (order, ctx) => refund(order, ctx, await ownToken()), { name: 'refund-canceled' }),
    ],
  });
}

/** Records what happened to an order's fee; false when that was recorded before (a redelivery). */
async function recordFee(ctx: Context, order: OrderRef, status: FeesTables['fees']['status'], feeCents: number) {
  const db = await database<FeesTables>(ctx);
  const values = { order_id: order.orderId, account_id: order.accountId, symbol: order.symbol, fee_cents: feeCents };
  const row = await db
    .insertInto('fees')
    .values({ ...values, status })
    .onConflict((oc) => {
      // Only a charged fee turns into a refunded one, and a voided one (the order failed before its
      // placement was announced) into a waived one once it is; every other outcome is final.
      const from = status === 'refunded' ? 'charged' : status === 'waived' ? 'voided' : undefined;
      return from
        ? oc.column('order_id').doUpdateSet({ status, updated_at: sql`now()` }).where('fees.status', '=', from)
        : oc.doNothing();
    })
    .returning('order_id')
    .executeTakeFirst();
  return row !== undefined;
}

async function refund(order: OrderRef, ctx: Context, auth: string): Promise<void> {
  const { refunded, fee } = await ctx.call(refundFee, { orderId: order.orderId, accountId: order.accountId }, { auth });
  if (!refunded) {
    await recordFee(ctx, order, 'voided', 0);
    return;
  }
  if (await recordFee(ctx, order, 'refunded', toCents(fee))) {
    await ctx.emit(feeRefunded, { orderId: order.orderId, accountId: order.accountId, symbol: order.symbol, fee });
  }
}
