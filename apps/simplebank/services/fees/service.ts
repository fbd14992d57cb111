import { type Context, defineService, on } from '@chassis/core';
import { database, sql } from '@chassis/data';
import type { Generated } from 'kysely';
import { chargeFee, refundFee } from '../../contracts/account-transactions.ts';
import { feeFor, money, toCents } from '../../contracts/common.ts';
import { chargeFailed, feeCharged, feeRefunded } from '../../contracts/fees.ts';
import { orderPlaced } from '../../contracts/market.ts';
import { orderCanceled, orderFailed } from '../../contracts/orders.ts';
import { systemToken } from '../shared/system-token.ts';

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
 * Fees: 0.1% of an order's notional, at least 1.00, charged when the exchange takes the order and
 * refunded when the order fails afterwards. The ledger keeps the money and decides, under the
 * account's lock, whether a charge or refund is due (once per order, a refund before the charge voids
 * it); this service asks it first — holding no transaction while it does — then records the outcome
 * for its report and announces it once.
 */
export function feesService(options: { secret: string }) {
  // The ledger charges and refunds fees for the bank's services only: these calls carry its own token.
  const ownToken = systemToken(options.secret, 'fees');
  return defineService({
    name: 'fees',
    version: '0.1.0',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [chargeFee, refundFee, feeCharged, feeRefunded, chargeFailed],
    events: [
      // Delivered again, the ledger answers the charge it made (or refused) and the fee's row is there: the
      // handler records and announces nothing, so it needs no inbox row.
      on(
        orderPlaced,
        async (order, ctx) => {
          const fee = money(feeFor(toCents(order.notional)));
          const { charged } = await ctx.call(
            chargeFee,
            { orderId: order.orderId, accountId: order.accountId, fee },
            { auth: await ownToken() },
          );
          const ref = { orderId: order.orderId, accountId: order.accountId, symbol: order.symbol, fee };
          const recorded = await recordFee(ctx, order, charged ? 'charged' : 'waived', charged ? toCents(fee) : 0);
          if (!recorded) return;
          if (charged) await ctx.emit(feeCharged, ref);
          else
            await ctx.emit(chargeFailed, {
              ...ref,
              reason: 'the order had ended, or no cash was free to take the fee from',
            });
        },
        { idempotent: 'with-emits' },
      ),
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
