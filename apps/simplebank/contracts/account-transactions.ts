import { action, defineError } from '@chassis/core';
import { z } from 'zod';
import { AccountId, Money, OrderId, Quantity, StockSymbol } from './common.ts';

export const requestReservation = action('account-transactions.requestReservation', {
  description:
    'Reserves shares for an order so they cannot be sold twice. Reserving again for the same order is a no-op.',
  input: z.object({ orderId: OrderId, accountId: AccountId, symbol: StockSymbol, quantity: Quantity }),
  output: z.object({ reservationId: z.string(), free: z.number().int().nonnegative() }),
  idempotent: true,
});

export const InsufficientShares = defineError('INSUFFICIENT_SHARES', { status: 409, retryable: false });

/** The caller's accounts (`GET /accounts`); an admin sees every account. */
export const listAccounts = action('account-transactions.listAccounts', {
  input: z.object({}),
  output: z.array(z.object({ id: AccountId, name: z.string(), cash: Money })),
  idempotent: true,
});
