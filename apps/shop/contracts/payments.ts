import { action, defineError, event } from '@chassis/core';
import { z } from 'zod';
import { OrderId, UserId } from './common.ts';

/**
 * `charged`: money taken. `held`: the fraud rule flagged it (over 10,000.00) — held for review, nothing
 * taken. `declined`: the card was refused. `voided`: undone by the order's saga (a charge refunded, a
 * hold released), or a void that came first, so that a late charge for that order can never happen.
 */
export const PaymentStatus = z.enum(['charged', 'held', 'declined', 'voided']);

export const Payment = z.object({
  id: z.string().uuid(),
  orderId: OrderId,
  userId: UserId.nullable(),
  amount: z.number(),
  status: PaymentStatus,
  /** Whether money was ever taken (a voided charge was: it was refunded). */
  charged: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const PaymentNotFound = defineError('PAYMENT_NOT_FOUND', { status: 404, retryable: false });
export const PaymentDeclined = defineError('PAYMENT_DECLINED', { status: 402, retryable: false });
/** A charge for an order whose payment was already voided: the saga has moved on; nothing is charged. */
export const PaymentVoided = defineError('PAYMENT_VOIDED', { status: 409, retryable: false });

/** Takes the payment of an order, once per order (service token only). */
export const chargePayment = action('shop-payments.chargePayment', {
  input: z.object({
    orderId: OrderId,
    userId: UserId,
    amountCents: z.number().int().positive(),
    cardLast4: z.string().regex(/^\d{4}$/),
  }),
  output: z.object({ paymentId: z.string().uuid(), status: PaymentStatus }),
  idempotent: true,
});

/** Charges a payment held for review, once an admin approved its order (service token only). */
export const capturePayment = action('shop-payments.capturePayment', {
  input: z.object({ orderId: OrderId }),
  output: z.object({ paymentId: z.string().uuid(), status: PaymentStatus }),
  idempotent: true,
});

/** Undoes an order's payment, whatever it got to (service token only); with none yet, forbids one. */
export const voidPayment = action('shop-payments.voidPayment', {
  input: z.object({ orderId: OrderId }),
  output: z.object({ paymentId: z.string().uuid(), status: PaymentStatus }),
  idempotent: true,
});

export const getOrderPayment = action('shop-payments.getOrderPayment', {
  input: z.object({ orderId: OrderId }),
  output: Payment,
  idempotent: true,
});

export const paymentCharged = event(
  'shop-payments.payment_charged',
  z.object({ paymentId: z.string().uuid(), orderId: OrderId, amountCents: z.number().int() }),
);
export const paymentHeld = event(
  'shop-payments.payment_held',
  z.object({ paymentId: z.string().uuid(), orderId: OrderId, amountCents: z.number().int() }),
);
export const paymentVoided = event(
  'shop-payments.payment_voided',
  z.object({ paymentId: z.string().uuid(), orderId: OrderId, refundedCents: z.number().int() }),
);
