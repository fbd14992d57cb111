import { action, defineError } from '@chassis/core';
import { z } from 'zod';
import { Money, StockSymbol } from './common.ts';

export const Price = z.object({ symbol: StockSymbol, price: Money, at: z.string() });

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
