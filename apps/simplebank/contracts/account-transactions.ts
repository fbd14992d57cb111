import { action, defineError } from '@chassis/core';
import { z } from 'zod';
import { AccountId, Money, OrderId, Quantity, Side, StockSymbol } from './common.ts';

export const InsufficientShares = defineError('INSUFFICIENT_SHARES', { status: 409, retryable: false });
export const InsufficientCash = defineError('INSUFFICIENT_CASH', { status: 409, retryable: false });
/** The order failed or was canceled before its reservation came (a slow or retried request): nothing is reserved. */
export const OrderEnded = defineError('ORDER_ENDED', { status: 409, retryable: false });

export const requestReservation = action('account-transactions.requestReservation', {
  description:
    'Reserves what an order needs so it cannot be spent twice: the shares of a sell, the cash of a buy, and cash for the fee. Reserving again for the same order is a no-op; reserving for an order that already failed or was canceled is refused (ORDER_ENDED).',
  input: z.object({
    orderId: OrderId,
    accountId: AccountId,
    side: Side.default('sell'),
    symbol: StockSymbol,
    /** Shares to reserve (a sell) or to buy. */
    quantity: Quantity,
    /** Cash to reserve: the most a buy can cost plus its fee, or a sell's fee. */
    cash: Money.default('0.00'),
  }),
  output: z.object({ reservationId: z.string(), free: z.number().int().nonnegative() }),
  idempotent: true,
});

/**
 * Takes an order's fee out of the cash its reservation holds (else out of free cash), once per order.
 * For the bank's own services only (role `system`): a customer charging fees is FORBIDDEN.
 */
export const chargeFee = action('account-transactions.chargeFee', {
  input: z.object({ orderId: OrderId, accountId: AccountId, fee: Money }),
  output: z.object({ charged: z.boolean() }),
  idempotent: true,
});

/**
 * Gives an order's fee back, once per order. A fee not charged yet is not refunded, and is refused if
 * it comes later: the order has ended. Role `system` only, like `chargeFee`.
 */
export const refundFee = action('account-transactions.refundFee', {
  input: z.object({ orderId: OrderId, accountId: AccountId }),
  output: z.object({ refunded: z.boolean(), fee: Money }),
  idempotent: true,
});

export const Position = z.object({
  symbol: StockSymbol,
  quantity: z.number().int().nonnegative(),
  reserved: z.number().int().nonnegative(),
});

/** The caller's accounts (`GET /accounts`); an admin sees every account. */
export const listAccounts = action('account-transactions.listAccounts', {
  input: z.object({}),
  output: z.array(z.object({ id: AccountId, name: z.string(), cash: Money })),
  idempotent: true,
});

/** One account's cash and positions, for holdings. */
export const getPositions = action('account-transactions.getPositions', {
  input: z.object({ accountId: AccountId }),
  output: z.object({ accountId: AccountId, cash: Money, reservedCash: Money, positions: z.array(Position) }),
  idempotent: true,
});

export const LedgerEntry = z.object({
  id: z.number().int(),
  /** The order (or payment) the entry belongs to. */
  orderId: OrderId.nullable(),
  kind: z.enum(['opening', 'trade', 'fee', 'fee_refund', 'payment']),
  /** `CASH` or a symbol. */
  asset: z.string(),
  /** Cash as a decimal string, shares as a whole number, signed: what came in or went out. */
  amount: z.string(),
  at: z.string(),
});

/** An account's ledger entries, newest first (`GET /accounts/{id}/transactions`). */
export const listTransactions = action('account-transactions.listTransactions', {
  input: z.object({
    accountId: AccountId,
    page: z.number().int().min(1).default(1),
    size: z.number().int().min(1).max(100).default(20),
  }),
  output: z.object({ accountId: AccountId, page: z.number(), size: z.number(), entries: z.array(LedgerEntry) }),
  idempotent: true,
});

/** Credits a completed payment's amount to an account's cash, once per payment. */
export const creditPayment = action('account-transactions.creditPayment', {
  input: z.object({ paymentId: z.string().uuid(), accountId: AccountId, amount: Money }),
  output: z.object({ credited: z.boolean(), cash: Money }),
  idempotent: true,
});
