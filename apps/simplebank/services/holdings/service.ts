import {
  type BreakerPolicy,
  type CallOptions,
  ChassisError,
  type Context,
  defineService,
  handle,
  type RetryPolicy,
} from '@chassis/core';
import { getPositions } from '../../contracts/account-transactions.ts';
import { money, toCents } from '../../contracts/common.ts';
import { getHoldings } from '../../contracts/holdings.ts';
import { getPrice } from '../../contracts/market-data.ts';
import { requireAccount } from '../shared/access.ts';

export interface HoldingsOptions {
  /** How long one call to the ledger or to market data may take, its retries included. Default 1000 ms. */
  timeoutMs?: number;
  /** Default: 3 attempts, backoff from 50 ms up to 500 ms with full jitter. */
  retry?: RetryPolicy;
  /** Default: opens after 5 failures in a row, probes again after 5 s. */
  breaker?: BreakerPolicy;
}

interface Quote {
  price: string;
  at: string;
}

/** A symbol's price and whether it is current (false: the last one seen, market data being unreachable). */
interface Pricing {
  quote: Quote | undefined;
  current: boolean;
}

/**
 * Holdings: an account's positions from the ledger × prices from market data (book ch. 6's example of
 * graceful degradation). Every call has a timeout, retries with backoff and jitter and a circuit
 * breaker — the chassis's call policies. The ledger is not optional: if it cannot answer, neither can
 * holdings. Prices are optional: the last price seen for each symbol is kept here and stands in while market
 * data cannot be reached (`degraded`, `pricedAt` that price's time); a symbol never priced is shown
 * with its quantity and no valuation.
 */
export function holdingsService(options: HoldingsOptions = {}) {
  // One breaker per target and node: the chassis keeps the settings of the first call that made it (on a
  // node where something else called market data first, that caller's — by default the node's).
  const policies = {
    timeoutMs: options.timeoutMs ?? 1000,
    retry: options.retry ?? { maxAttempts: 3, initialDelayMs: 50, maxDelayMs: 500 },
    breaker: options.breaker ?? { kind: 'consecutive', failures: 5, openMs: 5000 },
  } satisfies CallOptions;
  const lastSeen = new Map<string, Quote>();

  async function priceOf(symbol: string, ctx: Context): Promise<Pricing> {
    let fellBack = false;
    try {
      const quote = await ctx.call(
        getPrice,
        { symbol },
        {
          ...policies,
          // Only when market data fails or is unreachable (never for UNKNOWN_SYMBOL, which it answers).
          fallback: (error) => {
            const last = lastSeen.get(symbol);
            if (!last) throw error;
            fellBack = true;
            return { symbol, ...last };
          },
        },
      );
      if (fellBack) return { quote, current: false };
      lastSeen.set(symbol, { price: quote.price, at: quote.at });
      return { quote, current: true };
    } catch (error) {
      // No price at all: market data unreachable before it ever priced this symbol, or a symbol the
      // exchange does not list. Anything else (a token refused, say) is not degradation but a failure.
      if (error instanceof ChassisError && (error.retryable || ['INTERNAL', 'UNKNOWN_SYMBOL'].includes(error.code))) {
        return { quote: undefined, current: false };
      }
      throw error;
    }
  }

  return defineService({
    name: 'holdings',
    version: '0.1.0',
    description: 'Positions valued at current prices, degrading to the last prices seen or none',
    uses: [getPositions, getPrice],
    actions: [
      handle(getHoldings, async ({ accountId }, ctx) => {
        requireAccount(ctx.user, accountId);
        // The caller's token travels on: the ledger checks the account is theirs too.
        const ledger = await ctx.call(getPositions, { accountId }, policies);
        const prices = await Promise.all(ledger.positions.map((position) => priceOf(position.symbol, ctx)));
        let totalCents = toCents(ledger.cash);
        let pricedAt: string | undefined;
        const positions = ledger.positions.map((position, i) => {
          const { quote } = prices[i]!;
          if (!quote) return { ...position, price: null, value: null };
          const valueCents = position.quantity * toCents(quote.price);
          totalCents += valueCents;
          if (pricedAt === undefined || Date.parse(quote.at) < Date.parse(pricedAt)) pricedAt = quote.at;
          return { ...position, price: quote.price, value: money(valueCents) };
        });
        const degraded = prices.some((pricing) => !pricing.current);
        if (degraded) {
          const symbols = (which: (pricing: Pricing) => boolean) =>
            ledger.positions.filter((_, i) => which(prices[i]!)).map((position) => position.symbol);
          ctx.log.warn(
            { accountId, lastSeen: symbols((p) => !p.current && !!p.quote), unpriced: symbols((p) => !p.quote) },
            'holdings degraded: prices could not be fetched from market data',
          );
        }
        return {
          accountId,
          cash: ledger.cash,
          positions,
          total: money(totalCents),
          pricedAt: pricedAt ?? null,
          degraded,
        };
      }),
    ],
  });
}
