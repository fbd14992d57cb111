import { action, defineError, event } from '@chassis/core';
import { z } from 'zod';

/**
 * SimpleBank's sell-order slice (specs/simplebank.md), the running example of the core's tests.
 * Service names carry a suffix so runs against a shared broker never see each other's queues.
 */
export function sellOrderSlice(suffix: string) {
  const orders = `orders-${suffix}`;
  const ledger = `account-transactions-${suffix}`;
  const market = `market-${suffix}`;
  const notifications = `notifications-${suffix}`;

  const AccountId = z.string().regex(/^\d+$/, 'an account id is digits, e.g. "101"');
  const StockSymbol = z.string().regex(/^[A-Z]{1,5}$/, 'a symbol is 1 to 5 capital letters, e.g. "BHP"');

  const sellShares = action(`${orders}.sellShares`, {
    input: z.object({ accountId: AccountId, symbol: StockSymbol, quantity: z.number().int().positive() }),
    output: z.object({ orderId: z.string(), status: z.enum(['created', 'rejected']) }),
    idempotent: false,
  });
  const requestReservation = action(`${ledger}.requestReservation`, {
    input: z.object({
      orderId: z.string(),
      accountId: AccountId,
      symbol: StockSymbol,
      quantity: z.number().int().positive(),
    }),
    output: z.object({ reservationId: z.string(), free: z.number().int().nonnegative() }),
    idempotent: true,
  });
  /** Echoes what it gets: payload size and serialization tests. */
  const echo = action(`${ledger}.echo`, {
    input: z.object({ data: z.string() }),
    output: z.object({ data: z.string(), node: z.string() }),
    idempotent: true,
  });
  /** Sleeps, then tells what it saw: deadline tests. */
  const slow = action(`${ledger}.slow`, {
    input: z.object({ ms: z.number().int().nonnegative() }),
    output: z.object({ node: z.string(), deadline: z.number() }),
    idempotent: true,
  });
  /** Declared by the contract but served by nobody: the unknown-action test. */
  const closeAccount = action(`${ledger}.closeAccount`, {
    input: z.object({ accountId: AccountId }),
    output: z.object({ closed: z.boolean() }),
  });
  /** A service nobody runs. */
  const quote = action(`exchange-${suffix}.quote`, {
    input: z.object({ symbol: StockSymbol }),
    output: z.object({ price: z.string() }),
    idempotent: true,
  });
  const orderCreated = event(
    `${orders}.order_created`,
    z.object({
      orderId: z.string(),
      accountId: AccountId,
      symbol: StockSymbol,
      quantity: z.number().int().positive(),
      side: z.enum(['sell', 'buy']),
      note: z.string().optional(),
    }),
  );
  const InsufficientShares = defineError('INSUFFICIENT_SHARES', { status: 409, retryable: false });

  return {
    names: { orders, ledger, market, notifications },
    sellShares,
    requestReservation,
    echo,
    slow,
    closeAccount,
    quote,
    orderCreated,
    InsufficientShares,
  };
}

export type SellOrderSlice = ReturnType<typeof sellOrderSlice>;
