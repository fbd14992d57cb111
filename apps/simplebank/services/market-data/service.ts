import { ChassisError, defineService, every, handle } from '@chassis/core';
import { getPrice, listPrices, UnknownSymbol } from '../../contracts/market-data.ts';

export interface MarketDataOptions {
  /** The exchange's base URL (its `GET /prices`). */
  exchangeUrl: string;
  /** How often prices are fetched. Default 1000 ms. */
  refreshMs?: number;
  /** How long one fetch may take. Default 2000 ms. */
  timeoutMs?: number;
}

interface Quote {
  symbol: string;
  price: string;
  at: string;
}

/**
 * Current prices, fed from the exchange: fetched every second and kept, so that while the exchange is
 * unreachable the last known prices are still served (with their time). Nothing is known before the
 * first fetch succeeds: then asking is `UNAVAILABLE`, and callers degrade.
 */
export function marketDataService(options: MarketDataOptions) {
  const refreshMs = options.refreshMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 2000;
  const prices = new Map<string, Quote>();
  let lastError: string | undefined;

  async function refresh(): Promise<void> {
    try {
      const response = await fetch(new URL('/prices', options.exchangeUrl), { signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) throw new Error(`the exchange answered ${response.status}`);
      const body = (await response.json()) as { prices: Quote[] };
      for (const quote of body.prices) prices.set(quote.symbol, quote);
      lastError = undefined;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
  }

  const known = () => {
    if (prices.size === 0) {
      throw new ChassisError(
        'UNAVAILABLE',
        `No prices yet: the exchange has not answered (${lastError ?? 'starting'})`,
      );
    }
  };

  return defineService({
    name: 'market-data',
    version: '0.1.0',
    description: 'Prices from the exchange, the last known kept',
    start: refresh,
    // Every instance keeps its own prices; a refresh may take its whole fetch timeout.
    schedules: [every('refresh-prices', refreshMs, refresh, { scope: 'instance', timeoutMs: timeoutMs + 1000 })],
    health: {
      'exchange:prices': () =>
        lastError === undefined
          ? { status: 'pass' }
          : { status: prices.size > 0 ? 'warn' : 'fail', output: `serving last known prices: ${lastError}` },
    },
    actions: [
      handle(listPrices, () => {
        known();
        return [...prices.values()].sort((a, b) => a.symbol.localeCompare(b.symbol));
      }),
      handle(getPrice, ({ symbol }) => {
        known();
        const quote = prices.get(symbol);
        if (!quote) throw UnknownSymbol(`The exchange lists no ${symbol}`, { symbol });
        return quote;
      }),
    ],
  });
}
