import { ChassisError, defineService, every, handle } from '@chassis/core';
import { getPrice, listPrices, QUOTE_AGE_FLAG, UnknownSymbol } from '../../contracts/market-data.ts';

export interface MarketDataOptions {
  /** The exchange's base URL (its `GET /prices`). */
  exchangeUrl: string;
  /** How often prices are fetched. Default 1000 ms. */
  refreshMs?: number;
  /** How long one fetch may take. Default 2000 ms. */
  timeoutMs?: number;
  /**
   * Nobody asked for a price for this long: fetch only every `idleRefreshMs`, and refresh before answering
   * the next question if the prices are older than `refreshMs`. Default 30 000 ms.
   */
  idleAfterMs?: number;
  /** How often prices are fetched while nobody asks. Default 30 000 ms. */
  idleRefreshMs?: number;
}

interface Quote {
  symbol: string;
  price: string;
  at: string;
}

/**
 * Current prices, fed from the exchange: fetched every second while they are asked for, and kept, so
 * that while the exchange is unreachable the last known prices are still served (with their time).
 * Nothing is known before the first fetch succeeds: then asking is `UNAVAILABLE`, and callers degrade.
 * While nobody asks, a fetch every half minute keeps the health check honest, and the first question
 * after the quiet waits for a fresh fetch rather than get an old price.
 */
export function marketDataService(options: MarketDataOptions) {
  const refreshMs = options.refreshMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 2000;
  const idleAfterMs = options.idleAfterMs ?? 30_000;
  const idleRefreshMs = options.idleRefreshMs ?? 30_000;
  const prices = new Map<string, Quote>();
  let lastError: string | undefined;
  let askedAt = 0;
  let fetchedAt = 0;
  let fetching: Promise<void> | undefined;

  /** One fetch at a time: a question and the schedule arriving together share it. */
  function refresh(): Promise<void> {
    fetching ??= fetchPrices().finally(() => {
      fetching = undefined;
    });
    return fetching;
  }

  async function fetchPrices(): Promise<void> {
    fetchedAt = Date.now();
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

  /**
   * A question about prices: after a quiet spell, the prices are fetched again before it is answered. A
   * fetch already under way (the exchange slow to answer) is not waited for: the last known prices are.
   */
  async function asked(): Promise<void> {
    const now = Date.now();
    askedAt = now;
    if (now - fetchedAt > refreshMs * 2 && fetching === undefined) await refresh();
  }

  async function scheduled(): Promise<void> {
    const now = Date.now();
    if (now - askedAt > idleAfterMs && now - fetchedAt < idleRefreshMs) return;
    await refresh();
  }

  /** The dark launch behind `quote-age`: with the flag on, each price says how old it is. */
  const withAge =
    (flagOn: boolean) =>
    (quote: Quote): Quote & { ageMs?: number } => {
      const at = Date.parse(quote.at);
      // A time the exchange wrote in a form Date cannot read gets no age rather than a wrong one.
      return flagOn && Number.isFinite(at) ? { ...quote, ageMs: Math.max(0, Date.now() - at) } : quote;
    };

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
    schedules: [every('refresh-prices', refreshMs, scheduled, { scope: 'instance', timeoutMs: timeoutMs + 1000 })],
    health: {
      'exchange:prices': () =>
        lastError === undefined
          ? { status: 'pass' }
          : { status: prices.size > 0 ? 'warn' : 'fail', output: `serving last known prices: ${lastError}` },
    },
    actions: [
      handle(listPrices, async (_input, ctx) => {
        await asked();
        known();
        const answer = withAge(await ctx.flags.getBooleanValue(QUOTE_AGE_FLAG, false));
        return [...prices.values()].sort((a, b) => a.symbol.localeCompare(b.symbol)).map(answer);
      }),
      handle(getPrice, async ({ symbol }, ctx) => {
        await asked();
        known();
        const quote = prices.get(symbol);
        if (!quote) throw UnknownSymbol(`The exchange lists no ${symbol}`, { symbol });
        return withAge(await ctx.flags.getBooleanValue(QUOTE_AGE_FLAG, false))(quote);
      }),
    ],
  });
}
