import { action, defineError } from '@chassis/core';
import { z } from 'zod';
import { Money, StockSymbol } from './common.ts';

export const Price = z.object({
  symbol: StockSymbol,
  price: Money,
  at: z.string(),
  /**
   * How old the price is, in milliseconds, when answered: dark-launched behind the feature flag
   * `quote-age` (`CHASSIS_FLAG_QUOTE_AGE=true`), on for the canary track only (deploy/kubernetes).
   */
  ageMs: z.number().int().nonnegative().optional(),
});

/** The feature flag that adds `ageMs` to prices; off unless set. */
export const QUOTE_AGE_FLAG = 'quote-age';

export const UnknownSymbol = defineError('UNKNOWN_SYMBOL', { status: 404, retryable: false });

/** Every price known (`GET /prices`): the last one the exchange gave, kept when it is unreachable. */
export const listPrices = action('market-data.listPrices', {
  input: z.object({}),
  output: z.array(Price),
  idempotent: true,
});

/** One symbol's price (`GET /prices/{symbol}`); `UNKNOWN_SYMBOL` (404) for a symbol the exchange does not list. */
export const getPrice = action('market-data.getPrice', {
  input: z.object({ symbol: StockSymbol }),
  output: Price,
  idempotent: true,
});
