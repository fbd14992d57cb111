import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { money, toCents } from '../contracts/common.ts';

/**
 * A stand-in for the third-party stock exchange (specs/simplebank.md, "exchange-simulator"). It sits
 * outside the system on purpose: plain Fastify, no chassis node, so the market service talks to it the
 * way it would talk to a real exchange — over HTTP that can be slow, fail, or be down. The knobs make
 * it misbehave on demand; `/control` is exempt from them so a test can always heal it again.
 */

export interface ExchangeKnobs {
  /** Added before answering every trading and price request. */
  latencyMs: number;
  /** Fraction (0–1) of trading and price requests answered 503. */
  errorRate: number;
  /** Every trading and price request is answered 503. */
  outage: boolean;
  /** Fraction (0–1) of new orders rejected. */
  rejectRate: number;
  /** Orders for these symbols are always rejected (a trading halt). */
  rejectSymbols: string[];
}

export interface ExchangeStats {
  /** New orders only: a repeated clientOrderId counts under `duplicates` instead. */
  ordersReceived: number;
  filled: number;
  rejected: number;
  duplicates: number;
  /** Requests answered 503 by `outage` or `errorRate`. */
  errors: number;
}

export interface FilledOrder {
  exchangeOrderId: string;
  clientOrderId: string;
  status: 'filled';
  side: 'buy' | 'sell';
  symbol: string;
  quantity: number;
  price: string;
  filledAt: string;
}

export interface RejectedOrder {
  exchangeOrderId: string;
  clientOrderId: string;
  status: 'rejected';
  reason: string;
}

export type OrderAnswer = FilledOrder | RejectedOrder;

export interface ExchangeSimulatorOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  /** Symbol → decimal string, e.g. `{ BHP: '91.72' }`. */
  prices?: Record<string, string>;
  /** How often prices take a random step; 0 freezes them. */
  tickMs?: number;
  /** Fixes the price walk and the error and reject draws, so a run can be repeated. */
  seed?: number;
  knobs?: Partial<ExchangeKnobs>;
}

export interface ExchangeSimulator {
  url: string;
  /** Changes some knobs (validated like `PUT /control`; throws on bad input) and returns all of them. */
  configure(knobs: Partial<ExchangeKnobs>): ExchangeKnobs;
  readonly knobs: ExchangeKnobs;
  stats(): ExchangeStats;
  /** Symbol → current price as a decimal string. */
  prices(): Record<string, string>;
  close(): Promise<void>;
}

export const DEFAULT_PRICES: Readonly<Record<string, string>> = { BHP: '91.72', GOOG: '34.21', ABC: '1.17' };

const DEFAULT_KNOBS: ExchangeKnobs = { latencyMs: 0, errorRate: 0, outage: false, rejectRate: 0, rejectSymbols: [] };

/** Largest relative move of one walk step. */
const MAX_STEP = 0.005;

// Strict so a misspelt knob (`errorrate`) is a 400 rather than silently changing nothing.
const knobChanges = z
  .strictObject({
    // Capped so a typo cannot park requests for hours; five minutes outlasts any caller's timeout.
    latencyMs: z.number().int().min(0).max(300_000),
    errorRate: z.number().min(0).max(1),
    outage: z.boolean(),
    rejectRate: z.number().min(0).max(1),
    rejectSymbols: z.array(z.string().min(1)),
  })
  .partial();

const orderRequest = z.object({
  clientOrderId: z.string().min(1).max(100),
  side: z.enum(['buy', 'sell']),
  symbol: z.string().min(1),
  quantity: z.number().int().positive(),
  /** The worst price accepted: a buy fills at or below it, a sell at or above; else it is rejected. */
  limitPrice: z
    .string()
    .regex(/^\d{1,15}\.\d{2}$/)
    .optional(),
});

/** mulberry32: tiny, fast and good enough to make simulated chaos repeatable. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** One step of the random walk in integer cents: within ±0.5%, never below one cent. */
export function walkPrice(cents: number, random: () => number): number {
  const factor = 1 + (random() * 2 - 1) * MAX_STEP;
  return Math.max(1, Math.round(cents * factor));
}

function parseCents(symbol: string, text: string): number {
  const match = /^(\d+)(?:\.(\d{1,2}))?$/.exec(text);
  const cents = match ? Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0')) : 0;
  if (cents < 1 || !Number.isSafeInteger(cents)) {
    throw new RangeError(`Price of ${symbol} must be a decimal string of at least 0.01, got ${JSON.stringify(text)}`);
  }
  return cents;
}

function fieldErrors(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join('.') || '(root)', message: issue.message }));
}

function describeIssues(what: string, error: z.ZodError): string {
  return `${what}: ${fieldErrors(error)
    .map((field) => `${field.path}: ${field.message}`)
    .join('; ')}`;
}

function errorBody(code: string, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

function badRequest(what: string, error: z.ZodError) {
  return errorBody('BAD_REQUEST', describeIssues(what, error), { fields: fieldErrors(error) });
}

function validKnobs(changes: unknown): Partial<ExchangeKnobs> {
  const parsed = knobChanges.safeParse(changes);
  if (!parsed.success) throw new RangeError(describeIssues('Invalid knobs', parsed.error));
  return parsed.data;
}

export async function startExchangeSimulator(options: ExchangeSimulatorOptions = {}): Promise<ExchangeSimulator> {
  const tickMs = options.tickMs ?? 1000;
  if (!Number.isFinite(tickMs) || tickMs < 0) throw new RangeError(`tickMs must be 0 or more, got ${tickMs}`);

  const startedAt = new Date().toISOString();
  const quotes = new Map<string, { cents: number; at: string }>(
    Object.entries(options.prices ?? DEFAULT_PRICES).map(([symbol, price]) => [
      symbol,
      { cents: parseCents(symbol, price), at: startedAt },
    ]),
  );
  let knobs: ExchangeKnobs = { ...DEFAULT_KNOBS, ...validKnobs(options.knobs ?? {}) };
  const stats: ExchangeStats = { ordersReceived: 0, filled: 0, rejected: 0, duplicates: 0, errors: 0 };
  // Every answer is kept: a caller retrying after a timeout must get the first answer back, never a
  // second trade. Unbounded, which is fine for a simulator's lifetime.
  const answers = new Map<string, OrderAnswer>();
  let orderSequence = 0;

  // Separate streams, because ticks fire on wall-clock time: sharing one stream would let timing
  // shift which requests fail or get rejected, and seeded runs would stop being repeatable.
  const seed = options.seed ?? Math.floor(Math.random() * 4_294_967_296);
  const walkDraws = seededRandom(seed);
  const errorDraws = seededRandom(seed ^ 0x9e3779b9);
  const rejectDraws = seededRandom(seed ^ 0x85ebca6b);

  const closing = new AbortController();
  const app = Fastify({ logger: false });

  const exchangeFaults = async (_request: FastifyRequest, reply: FastifyReply) => {
    if (knobs.latencyMs > 0) {
      // Aborted on close so a long latency knob cannot hold the shutdown hostage.
      await sleep(knobs.latencyMs, undefined, { signal: closing.signal }).catch(() => undefined);
    }
    // Drawn on every request, whatever the knobs, so the n-th request's fate depends only on the seed.
    const errorDrawn = errorDraws() < knobs.errorRate;
    const unavailable = closing.signal.aborted
      ? 'The exchange is shutting down'
      : knobs.outage
        ? 'The exchange is down'
        : errorDrawn
          ? 'The exchange failed to answer'
          : undefined;
    if (unavailable !== undefined) {
      stats.errors++;
      return reply.code(503).send(errorBody('EXCHANGE_UNAVAILABLE', unavailable));
    }
  };

  const quoteOf = (symbol: string, quote: { cents: number; at: string }) => ({
    symbol,
    price: money(quote.cents),
    at: quote.at,
  });

  const decide = (order: z.infer<typeof orderRequest>): OrderAnswer => {
    const rejectDrawn = rejectDraws() < knobs.rejectRate;
    const exchangeOrderId = `EX-${++orderSequence}`;
    const reject = (reason: string): RejectedOrder => {
      stats.rejected++;
      return { exchangeOrderId, clientOrderId: order.clientOrderId, status: 'rejected', reason };
    };
    const quote = quotes.get(order.symbol);
    if (quote === undefined) return reject(`Unknown symbol ${order.symbol}`);
    if (knobs.rejectSymbols.includes(order.symbol)) return reject(`Trading in ${order.symbol} is halted`);
    if (rejectDrawn) return reject('Rejected by the exchange');
    if (order.limitPrice !== undefined) {
      const limit = toCents(order.limitPrice);
      const beyond = order.side === 'buy' ? quote.cents > limit : quote.cents < limit;
      if (beyond) return reject(`The price ${money(quote.cents)} is beyond the limit ${order.limitPrice}`);
    }
    stats.filled++;
    return {
      exchangeOrderId,
      clientOrderId: order.clientOrderId,
      status: 'filled',
      side: order.side,
      symbol: order.symbol,
      quantity: order.quantity,
      price: money(quote.cents),
      filledAt: new Date().toISOString(),
    };
  };

  app.setErrorHandler(async (error: FastifyError, _request, reply) => {
    // Fastify's own refusals (malformed JSON, wrong content type) come here with a 4xx status.
    const status =
      error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    const body =
      status === 500
        ? errorBody('INTERNAL', 'The exchange simulator failed')
        : errorBody('BAD_REQUEST', error.message, { fields: [{ path: '(root)', message: error.message }] });
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler(async (request, reply) =>
    reply.code(404).send(errorBody('NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`)),
  );

  app.get('/prices', { onRequest: exchangeFaults }, async () => ({
    prices: [...quotes].map(([symbol, quote]) => quoteOf(symbol, quote)),
  }));

  app.get<{ Params: { symbol: string } }>('/prices/:symbol', { onRequest: exchangeFaults }, async (request, reply) => {
    const quote = quotes.get(request.params.symbol);
    if (quote === undefined) {
      return reply.code(404).send(errorBody('UNKNOWN_SYMBOL', `Unknown symbol ${request.params.symbol}`));
    }
    return quoteOf(request.params.symbol, quote);
  });

  app.post('/orders', { onRequest: exchangeFaults }, async (request, reply) => {
    const parsed = orderRequest.safeParse(request.body);
    if (!parsed.success) return reply.code(400).send(badRequest('Invalid order', parsed.error));
    // The first answer wins even if the retry's body differs: the clientOrderId is the caller's
    // promise that this is the same order.
    const first = answers.get(parsed.data.clientOrderId);
    if (first !== undefined) {
      stats.duplicates++;
      return first;
    }
    stats.ordersReceived++;
    const answer = decide(parsed.data);
    answers.set(answer.clientOrderId, answer);
    return answer;
  });

  const configure = (changes: Partial<ExchangeKnobs>): ExchangeKnobs => {
    knobs = { ...knobs, ...validKnobs(changes) };
    return snapshotKnobs();
  };
  const snapshotKnobs = (): ExchangeKnobs => ({ ...knobs, rejectSymbols: [...knobs.rejectSymbols] });
  const snapshotStats = (): ExchangeStats => ({ ...stats });

  app.get('/control', async () => ({ knobs: snapshotKnobs(), stats: snapshotStats() }));
  app.put('/control', async (request, reply) => {
    const parsed = knobChanges.safeParse(request.body);
    if (!parsed.success) return reply.code(400).send(badRequest('Invalid knobs', parsed.error));
    knobs = { ...knobs, ...parsed.data };
    return { knobs: snapshotKnobs() };
  });

  const host = options.host ?? '127.0.0.1';
  await app.listen({ port: options.port ?? 0, host });
  const { port } = app.server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const walk = () => {
    const now = new Date().toISOString();
    for (const quote of quotes.values()) {
      const cents = walkPrice(quote.cents, walkDraws);
      if (cents !== quote.cents) {
        quote.cents = cents;
        quote.at = now;
      }
    }
  };
  const ticker = tickMs > 0 ? setInterval(walk, tickMs) : undefined;

  let closed: Promise<void> | undefined;
  return {
    url,
    configure,
    get knobs() {
      return snapshotKnobs();
    },
    stats: snapshotStats,
    prices: () => Object.fromEntries([...quotes].map(([symbol, quote]) => [symbol, money(quote.cents)])),
    close() {
      closed ??= (async () => {
        clearInterval(ticker);
        closing.abort();
        await app.close();
      })();
      return closed;
    },
  };
}
