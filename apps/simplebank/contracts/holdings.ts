import { action } from '@chassis/core';
import { z } from 'zod';
import { AccountId, Money, StockSymbol } from './common.ts';

/** One position valued at the current price: `price` and `value` are null when no price is known. */
export const Holding = z.object({
  symbol: StockSymbol,
  quantity: z.number().int().nonnegative(),
  reserved: z.number().int().nonnegative(),
  price: Money.nullable(),
  /** quantity × price. */
  value: Money.nullable(),
});

export const Holdings = z.object({
  accountId: AccountId,
  cash: Money,
  positions: z.array(Holding),
  /** cash + the values of the positions that have a price. */
  total: Money,
  /** The time of the oldest price used; null when none is known. */
  pricedAt: z.string().nullable(),
  /** True when some price is not current: the last one seen, or none at all (market data unreachable). */
  degraded: z.boolean(),
});

/** An account's positions valued at current prices (`GET /accounts/{id}/holdings`). */
export const getHoldings = action('holdings.getHoldings', {
  description:
    'An account’s cash and positions from the ledger, valued at market data’s prices. While market data cannot be reached, the last price seen stands in (degraded), or none: quantities without valuations.',
  input: z.object({ accountId: AccountId }),
  output: Holdings,
  idempotent: true,
});
