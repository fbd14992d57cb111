import { action, event } from '@chassis/core';
import { z } from 'zod';
import { AccountId, Money, toCents } from './common.ts';

/** The most one payment may bring in: 1,000,000.00. */
export const MAX_PAYMENT_CENTS = 100_000_000;

export const PaymentId = z.string().uuid();
export const PaymentStatus = z.enum(['pending', 'completed', 'failed']);

/** A payment's amount: more than 0.00 and at most 1000000.00. */
export const PaymentAmount = Money.refine(
  (amount) => toCents(amount) > 0 && toCents(amount) <= MAX_PAYMENT_CENTS,
  'a payment is more than 0.00 and at most 1000000.00',
);

export const Payment = z.object({
  id: PaymentId,
  accountId: AccountId,
  amount: Money,
  /** `completed` once the ledger credited it; `pending` while (or if it is unknown whether) it did; `failed` when it refused. */
  status: PaymentStatus,
  createdAt: z.string(),
});

/** `POST /payments`: a simulated card payment into one of the caller's accounts, completed at once. */
export const createPayment = action('payments.createPayment', {
  description:
    'A simulated card payment into an account: recorded, credited to the account’s cash by the ledger (once per payment), completed and announced with payment_completed.',
  input: z.object({ accountId: AccountId, amount: PaymentAmount }),
  output: Payment,
  idempotent: false,
});

/** `GET /payments/{id}`: the owner of the account, an admin or a SimpleBank service; NOT_FOUND to anyone else. */
export const getPayment = action('payments.getPayment', {
  input: z.object({ paymentId: PaymentId }),
  output: Payment,
  idempotent: true,
});

/** A payment was credited to the account (the strategy saga waits for it before buying). */
export const paymentCompleted = event(
  'payments.payment_completed',
  z.object({ paymentId: PaymentId, accountId: AccountId, amount: Money }),
);

/**
 * Internal (no route): credits the payments left `pending` for longer than the service's stale time —
 * their process died, or the ledger's answer was lost, between recording and crediting. The ledger
 * credits a payment once by its id, so asking again is safe. The payments service's sweep calls it.
 */
export const resumePendingPayments = action('payments.resumePendingPayments', {
  input: z.object({}),
  output: z.object({ completed: z.number().int(), failed: z.number().int(), stillPending: z.number().int() }),
  idempotent: true,
});
