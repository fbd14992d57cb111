import { randomUUID } from 'node:crypto';
import { ChassisError, defineService, handle, requireIdentity } from '@chassis/core';
import { database } from '@chassis/data';
import { FRAUD_REVIEW_OVER_CENTS, fromCents } from '../../contracts/common.ts';
import {
  capturePayment,
  chargePayment,
  getOrderPayment,
  PaymentNotFound,
  PaymentVoided,
  paymentCharged,
  paymentHeld,
  paymentVoided,
  voidPayment,
} from '../../contracts/payments.ts';
import { isPrivileged, requireSystem } from '../shared/access.ts';

interface PaymentsTables {
  payments: {
    id: string;
    order_id: string;
    user_id: string | null;
    amount_cents: number;
    status: 'charged' | 'held' | 'declined' | 'voided';
    charged: boolean;
    created_at: Date;
    updated_at: Date;
  };
}

/** The card the simulated processor declines (the usual test number for "card declined"). */
const DECLINING_CARD_LAST4 = '0002';

/**
 * Payments (their own schema), with a simulated card processor and the book's fraud rule: an amount
 * over 10,000.00 is suspicious, held for review and not charged. Every payment is keyed by its order
 * (one per order, ever), so the order saga can ask again after a lost reply or a crash and never
 * charge twice, and a void that comes before the charge (a saga compensating after a timeout) forbids
 * the charge for good.
 */
export function paymentsService() {
  return defineService({
    name: 'shop-payments',
    version: '0.1.0',
    description: 'Payments: a simulated card processor with a fraud hold',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [paymentCharged, paymentHeld, paymentVoided],
    actions: [
      handle(chargePayment, async (input, ctx) => {
        requireSystem(ctx.user, 'take payments');
        const db = await database<PaymentsTables>(ctx);
        const id = randomUUID();
        const now = new Date();
        const status: 'held' | 'declined' | 'charged' =
          input.amountCents > FRAUD_REVIEW_OVER_CENTS
            ? 'held'
            : input.cardLast4 === DECLINING_CARD_LAST4
              ? 'declined'
              : 'charged';
        const inserted = await db
          .insertInto('payments')
          .values({
            id,
            order_id: input.orderId,
            user_id: input.userId,
            amount_cents: input.amountCents,
            status,
            charged: status === 'charged',
            created_at: now,
            updated_at: now,
          })
          .onConflict((oc) => oc.column('order_id').doNothing())
          .returning(['id', 'status'])
          .executeTakeFirst();
        if (!inserted) {
          // Asked before: the answer is what was decided then.
          const existing = await db
            .selectFrom('payments')
            .select(['id', 'status'])
            .where('order_id', '=', input.orderId)
            .executeTakeFirstOrThrow();
          if (existing.status === 'voided') {
            throw PaymentVoided(`The payment of order ${input.orderId} was voided: it is not charged`, {
              orderId: input.orderId,
            });
          }
          return { paymentId: existing.id, status: existing.status };
        }
        const event = { paymentId: id, orderId: input.orderId, amountCents: input.amountCents };
        if (status === 'charged') await ctx.emit(paymentCharged, event);
        if (status === 'held') {
          await ctx.emit(paymentHeld, event);
          ctx.log.warn({ orderId: input.orderId, amount: fromCents(input.amountCents) }, 'payment held for review');
        }
        return { paymentId: id, status };
      }),
      handle(capturePayment, async ({ orderId }, ctx) => {
        requireSystem(ctx.user, 'capture payments');
        const db = await database<PaymentsTables>(ctx);
        const payment = await db
          .selectFrom('payments')
          .select(['id', 'status', 'amount_cents'])
          .where('order_id', '=', orderId)
          .forUpdate()
          .executeTakeFirst();
        if (!payment) throw PaymentNotFound(`No payment for order ${orderId}`, { orderId });
        if (payment.status === 'charged') return { paymentId: payment.id, status: payment.status };
        if (payment.status === 'voided') {
          throw PaymentVoided(`The payment of order ${orderId} was voided: it is not charged`, { orderId });
        }
        if (payment.status !== 'held') {
          throw new ChassisError(
            'CONFLICT',
            `The payment of order ${orderId} is ${payment.status}: only a held one is captured`,
          );
        }
        await db
          .updateTable('payments')
          .set({ status: 'charged', charged: true, updated_at: new Date() })
          .where('id', '=', payment.id)
          .execute();
        await ctx.emit(paymentCharged, { paymentId: payment.id, orderId, amountCents: Number(payment.amount_cents) });
        return { paymentId: payment.id, status: 'charged' as const };
      }),
      handle(voidPayment, async ({ orderId }, ctx) => {
        requireSystem(ctx.user, 'void payments');
        const db = await database<PaymentsTables>(ctx);
        const now = new Date();
        // No payment yet (the charge's reply was lost, or it never arrived): a voided row, so that the
        // charge, should it arrive late, is refused rather than taken.
        await db
          .insertInto('payments')
          .values({
            id: randomUUID(),
            order_id: orderId,
            user_id: null,
            amount_cents: 0,
            status: 'voided',
            charged: false,
            created_at: now,
            updated_at: now,
          })
          .onConflict((oc) => oc.column('order_id').doNothing())
          .execute();
        const before = await db
          .selectFrom('payments')
          .select(['id', 'status', 'amount_cents'])
          .where('order_id', '=', orderId)
          .forUpdate()
          .executeTakeFirstOrThrow();
        if (before.status !== 'voided') {
          await db
            .updateTable('payments')
            .set({ status: 'voided', updated_at: now })
            .where('id', '=', before.id)
            .execute();
          await ctx.emit(paymentVoided, {
            paymentId: before.id,
            orderId,
            refundedCents: before.status === 'charged' ? Number(before.amount_cents) : 0,
          });
        }
        return { paymentId: before.id, status: 'voided' as const };
      }),
      handle(getOrderPayment, async ({ orderId }, ctx) => {
        const db = await database<PaymentsTables>(ctx);
        const row = await db.selectFrom('payments').selectAll().where('order_id', '=', orderId).executeTakeFirst();
        const caller = requireIdentity(ctx.user);
        // Another user's payment is answered as absent: no probing for which orders exist.
        if (!row || (!isPrivileged(caller) && row.user_id !== caller.subject)) {
          throw PaymentNotFound(`No payment for order ${orderId}`, { orderId });
        }
        return {
          id: row.id,
          orderId: row.order_id,
          userId: row.user_id,
          amount: fromCents(Number(row.amount_cents)),
          status: row.status,
          charged: row.charged,
          createdAt: new Date(row.created_at).toISOString(),
          updatedAt: new Date(row.updated_at).toISOString(),
        };
      }),
    ],
  });
}
