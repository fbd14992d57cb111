import { randomUUID } from 'node:crypto';
import {
  ChassisError,
  type Context,
  defineService,
  handle,
  type Identity,
  isChassisError,
  requireIdentity,
} from '@chassis/core';
import { commit, database, sql } from '@chassis/data';
import type { Generated, Selectable } from 'kysely';
import { creditPayment } from '../../contracts/account-transactions.ts';
import { money, toCents } from '../../contracts/common.ts';
import { createPayment, getPayment, paymentCompleted } from '../../contracts/payments.ts';
import { requireAccount } from '../shared/access.ts';

interface PaymentsTables {
  payments: {
    id: string;
    account_id: string;
    amount_cents: number;
    status: 'pending' | 'completed' | 'failed';
    created_by: string;
    created_at: Generated<Date>;
    updated_at: Generated<Date>;
  };
}

type PaymentRow = Selectable<PaymentsTables['payments']>;

/**
 * Payments: a simulated card payment that completes at once. It is recorded `pending` and committed
 * before the ledger is asked to credit it (once per payment id, whoever asks again), then marked
 * `completed` and announced with `payment_completed` in one transaction (the outbox). A payment the
 * ledger refused is `failed`; one whose answer never came stays `pending` (the ledger may have credited
 * it, and crediting it again by its id would change nothing).
 */
export function paymentsService() {
  return defineService({
    name: 'payments',
    version: '0.1.0',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [creditPayment, paymentCompleted],
    actions: [
      handle(createPayment, async ({ accountId, amount }, ctx) => {
        const caller = requireAccount(ctx.user, accountId);
        const id = randomUUID();
        const cents = toCents(amount);
        const db = await database<PaymentsTables>(ctx);
        await db
          .insertInto('payments')
          .values({ id, account_id: accountId, amount_cents: cents, status: 'pending', created_by: caller.subject })
          .execute();
        // Durable before the ledger is asked, and the one connection free for it (embedded PGlite).
        await commit(ctx);
        try {
          await ctx.call(creditPayment, { paymentId: id, accountId, amount: money(cents) });
        } catch (error) {
          // Refused (an unknown account, …): nothing was credited. Not answered in time: it may have been.
          if (!isChassisError(error) || !error.retryable) {
            await setStatus(ctx, id, 'failed');
            await commit(ctx);
          }
          ctx.log.warn({ err: error, paymentId: id, accountId }, 'the ledger did not credit a payment');
          throw error;
        }
        const row = await setStatus(ctx, id, 'completed');
        if (!row) throw new ChassisError('INTERNAL', `Payment ${id} was no longer pending`);
        await ctx.emit(paymentCompleted, { paymentId: id, accountId, amount: money(cents) });
        return view(row);
      }),
      handle(getPayment, async ({ paymentId }, ctx) => {
        const caller = requireIdentity(ctx.user);
        const db = await database<PaymentsTables>(ctx);
        const row = await db.selectFrom('payments').selectAll().where('id', '=', paymentId).executeTakeFirst();
        // Another customer's payment is as unknown to them as one that does not exist.
        if (!row || !mayRead(caller, row.account_id)) {
          throw new ChassisError('NOT_FOUND', `No payment ${paymentId}`, { data: { paymentId } });
        }
        return view(row);
      }),
    ],
  });
}

function mayRead(caller: Identity, accountId: string): boolean {
  try {
    requireAccount(caller, accountId);
    return true;
  } catch {
    return false;
  }
}

/** Moves a pending payment on; undefined when it was not pending. */
async function setStatus(ctx: Context, id: string, status: 'completed' | 'failed') {
  const db = await database<PaymentsTables>(ctx);
  return db
    .updateTable('payments')
    .set({ status, updated_at: sql`now()` })
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .returningAll()
    .executeTakeFirst();
}

function view(row: PaymentRow) {
  return {
    id: row.id,
    accountId: row.account_id,
    amount: money(Number(row.amount_cents)),
    status: row.status,
    createdAt: new Date(row.created_at).toISOString(),
  };
}
