import { action, ChassisError, defineService, handle } from '@chassis/core';
import { z } from 'zod';

/**
 * The action the gateway benchmark routes to (`market-data.getPrice`, a price from a fixed table), shared
 * by bench/src/gateway-http.ts and the local-call driver that measures the call the way the gateway makes it.
 */
export const PRICES: Record<string, string> = { BHP: '91.72', GOOG: '34.21', ABC: '1.17' };

const StockSymbol = z.string().regex(/^[A-Z]{1,5}$/);

export const getPrice = action('market-data.getPrice', {
  input: z.object({ symbol: StockSymbol }),
  output: z.object({ symbol: StockSymbol, price: z.string() }),
  idempotent: true,
});

export const marketData = defineService({
  name: 'market-data',
  actions: [
    handle(getPrice, (input) => {
      const price = PRICES[input.symbol];
      if (!price) throw new ChassisError('NOT_FOUND', `No price for ${input.symbol}`);
      return { symbol: input.symbol, price };
    }),
  ],
});
