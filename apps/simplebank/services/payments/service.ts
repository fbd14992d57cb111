import { randomUUID } from 'node:crypto';
import {
  ChassisError,
  type Context,
  defineService,
  every,
  handle,
  type Identity,
  isChassisError,
  requireIdentity,
  systemToken,
} from '@chassis/core';
import { commit, database, sql } from '@chassis/data';
import type { Generated, Selectable } from 'kysely';
import { creditPayment } from '../../contracts/account-transactions.ts';
import { money, toCents } from '../../contracts/common.ts';
import { createPayment, getPayment, paymentCompleted, resumePendingPayments } from '../../contracts/payments.ts';
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

export interface PaymentsOptions {
  /** The HS256 secret identity signs with: the sweep credits under a token of the service's own. */
  secret: string;
  /** A payment still `pending` after this long is credited by the sweep. Default 60 s. */
  staleAfterMs?: number;
}

/**
 * Payments: a simulated card payment that completes at once. It is recorded `pending` and committed
 * before the ledger is asked to credit it (once per payment id, whoever asks again), then marked
 * `completed` and announced with `payment_completed` in one transaction (the outbox). A payment the
 * ledger refused is `failed`. One whose answer never came — the ledger timed out, this process died —
 * stays `pending` until a sweep asks the ledger again: crediting by the same id credits it once.
 */
export function paymentsService(options: PaymentsOptions) {
  const staleAfterMs = options.staleAfterMs ?? 60_000;
  const ownToken = systemToken(options.secret, 'payments');

  /** Credits a pending payment and completes it; the payment as it is afterwards. */
  async function credit(ctx: Context, payment: { id: string; accountId: string; cents: number }, auth?: string) {
    const { id, accountId, cents } = payment;
    try {
      await ctx.call(creditPayment, { paymentId: id, accountId, amount: money(cents) }, auth ? { auth } : {});
    } catch (error) {
      if (!mayHaveCredited(error)) {
        await setStatus(ctx, id, 'failed');
        await commit(ctx);
      }
      ctx.log.warn({ err: error, paymentId: id, accountId }, 'the ledger did not credit a payment');
      throw error;
    }
    const row = await setStatus(ctx, id, 'completed');
    // Completed meanwhile by the sweep (or the request, for the sweep): announced by whoever moved it.
    if (!row) return view(await read(ctx, id));
    await ctx.emit(paymentCompleted, { paymentId: id, accountId, amount: money(cents) });
    return view(row);
  }

  return defineService({
    name: 'payments',
    version: '0.2.0',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [creditPayment, paymentCompleted],
    schedules: [
      // Payments a crash left pending are completed or failed. One instance sweeps at a time.
      every(
        'resume-pending-payments',
        Math.max(1000, staleAfterMs / 2),
        async (ctx) => {
          const swept = await ctx.call(resumePendingPayments, {});
          if (swept.completed + swept.failed + swept.stillPending > 0)
            ctx.log.info(swept, 'swept payments left pending');
        },
        { timeoutMs: 10_000 },
      ),
    ],
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
        return credit(ctx, { id, accountId, cents });
      }),
      handle(resumePendingPayments, async (_input, ctx) => {
        const db = await database<PaymentsTables>(ctx);
        const stale = await db
          .selectFrom('payments')
          .select(['id', 'account_id', 'amount_cents'])
          .where('status', '=', 'pending')
          .where('created_at', '<', new Date(Date.now() - staleAfterMs))
          .orderBy('created_at')
          .limit(100)
          .execute();
        // Read only: no transaction is held while the ledger is asked.
        await commit(ctx);
        const swept = { completed: 0, failed: 0, stillPending: 0 };
        const auth = await ownToken();
        for (const payment of stale) {
          const outcome = await credit(
            ctx,
            { id: payment.id, accountId: payment.account_id, cents: Number(payment.amount_cents) },
            auth,
          ).then(
            (done) => done.status,
            // As `credit` records it: refused is failed; not answered stays pending for the next sweep.
            (error: unknown) => (mayHaveCredited(error) ? 'pending' : 'failed'),
          );
          await commit(ctx);
          if (outcome === 'completed') swept.completed++;
          else if (outcome === 'failed') swept.failed++;
          else swept.stillPending++;
        }
        return swept;
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

/**
 * Whether the ledger may have credited a payment that answered with `error`. Refused (an unknown account,
 * …): nothing was credited, the payment failed. Not answered in time: it may have been; it stays pending.
 */
function mayHaveCredited(error: unknown): boolean {
  return isChassisError(error) && error.retryable;
}

async function read(ctx: Context, id: string): Promise<PaymentRow> {
  const db = await database<PaymentsTables>(ctx);
  return db.selectFrom('payments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
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
