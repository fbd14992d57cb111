import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  action,
  ChassisError,
  chassisError,
  createLogger,
  defineError,
  defineService,
  event,
  handle,
  on,
} from '@chassis/core';
import { type TransportTarget, useCluster, waitUntil } from '@chassis/testing';
import { z } from 'zod';

/**
 * The resilience policies, end to end over a real transport: SimpleBank's holdings → market-data path
 * (book ch. 6), where holdings calls market-data for prices.
 */
export function resilienceSuite(target: TransportTarget): void {
  describe(`resilience policies: ${target.name}`, { skip: target.skip }, () => {
    const cluster = useCluster(target, { redelivery: { initialDelayMs: 20, maxDelayMs: 100 } });
    const { startNode } = cluster;

    function marketData() {
      const name = `market-data-${cluster.suffix}`;
      const getPrice = action(`${name}.getPrice`, {
        input: z.object({ symbol: z.string() }),
        output: z.object({ symbol: z.string(), price: z.string() }),
        idempotent: true,
      });
      const placeOrder = action(`${name}.placeOrder`, {
        input: z.object({ symbol: z.string() }),
        output: z.object({ ok: z.boolean() }),
        idempotent: false,
      });
      return { name, getPrice, placeOrder };
    }

    it(`[${target.name}] a call failing twice then succeeding is tried three times with jittered, growing waits`, async () => {
      const md = marketData();
      const seen = new Map<string, number[]>();
      await startNode([
        defineService({
          name: md.name,
          actions: [
            handle(md.getPrice, ({ symbol }) => {
              const times = seen.get(symbol) ?? [];
              times.push(performance.now());
              seen.set(symbol, times);
              if (times.length < 3) throw chassisError('UNAVAILABLE', 'the exchange feed is reconnecting');
              return { symbol, price: '91.72' };
            }),
          ],
        }),
      ]);
      // The delays the policy chose are read from the caller's debug log, so the backoff is checked
      // exactly and the wall clock only has to show each wait was at least its delay.
      const lines: string[] = [];
      const holdings = await startNode([], {
        logger: createLogger({ nodeId: 'holdings', level: 'debug', destination: { write: (l) => lines.push(l) } }),
        policies: {
          call: { retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 1000 }, breaker: false },
          // 40 calls needing 80 retries would exhaust the default budget (the next test shows it working).
          retryBudget: { ratio: 2 },
        },
      });
      const symbols = Array.from({ length: 40 }, (_, i) => `S${i}`);
      await Promise.all(symbols.map((symbol) => holdings.call(md.getPrice, { symbol })));
      const first: number[] = [];
      const second: number[] = [];
      for (const symbol of symbols) {
        const [t1, t2, t3] = seen.get(symbol)!;
        assert.equal(seen.get(symbol)!.length, 3, `${symbol} was tried three times`);
        first.push(t2! - t1!);
        second.push(t3! - t2!);
      }
      const retries = lines
        .map((line) => JSON.parse(line) as { msg?: string; attempt?: number; delayMs?: number; code?: string })
        .filter((entry) => entry.msg?.startsWith('retrying'));
      const delays = (attempt: number) => retries.filter((r) => r.attempt === attempt).map((r) => r.delayMs!);
      assert.equal(retries.length, 80, 'two retries per call');
      assert.ok(retries.every((r) => r.code === 'UNAVAILABLE'));
      // Full jitter under a ceiling that doubles: anywhere in [0, 100] ms, then in [0, 200] ms.
      assert.ok(
        delays(1).every((d) => d >= 0 && d <= 100),
        `first delays ${delays(1)}`,
      );
      assert.ok(
        delays(2).every((d) => d >= 0 && d <= 200),
        `second delays ${delays(2)}`,
      );
      assert.ok(new Set(delays(1)).size > 5, 'delays are jittered, not all equal');
      // Forty draws all under the first ceiling would have odds of 2^-40.
      assert.ok(Math.max(...delays(2)) > 100, 'the second ceiling is higher than the first');
      // Each wait lasted at least its delay (order statistics keep that without pairing them up).
      const atLeast = (waits: number[], chosen: number[]) => {
        const w = [...waits].sort((a, b) => a - b);
        const c = [...chosen].sort((a, b) => a - b);
        return c.every((d, i) => w[i]! >= d - 2);
      };
      assert.ok(atLeast(first, delays(1)), `waits ${first} were at least the delays ${delays(1)}`);
      assert.ok(atLeast(second, delays(2)), `waits ${second} were at least the delays ${delays(2)}`);
    });

    it(`[${target.name}] a non-idempotent action is not retried`, async () => {
      const md = marketData();
      let calls = 0;
      await startNode([
        defineService({
          name: md.name,
          actions: [
            handle(md.placeOrder, () => {
              calls++;
              throw chassisError('UNAVAILABLE', 'exchange busy');
            }),
          ],
        }),
      ]);
      const caller = await startNode([]);
      await assert.rejects(caller.call(md.placeOrder, { symbol: 'BHP' }), { code: 'UNAVAILABLE' });
      assert.equal(calls, 1);
      // Unless the call says the callee tolerates it.
      await assert.rejects(
        caller.call(
          md.placeOrder,
          { symbol: 'BHP' },
          { retry: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 1, nonIdempotent: true } },
        ),
        { code: 'UNAVAILABLE' },
      );
      assert.equal(calls, 3);
    });

    it(`[${target.name}] with the target failing every call, attempts stay within (1 + budget) × calls`, async () => {
      const md = marketData();
      let attempts = 0;
      await startNode([
        defineService({
          name: md.name,
          actions: [
            handle(md.getPrice, () => {
              attempts++;
              throw chassisError('UNAVAILABLE', 'down');
            }),
          ],
        }),
      ]);
      const caller = await startNode([], {
        policies: {
          call: { retry: { maxAttempts: 5, initialDelayMs: 1, maxDelayMs: 2 }, breaker: false },
          retryBudget: { ratio: 0.2, windowMs: 60_000, minRetries: 0 },
        },
      });
      const calls = 200;
      for (let i = 0; i < calls; i++) {
        await assert.rejects(caller.call(md.getPrice, { symbol: 'BHP' }), { code: 'UNAVAILABLE' });
      }
      assert.ok(attempts <= 1.2 * calls, `${attempts} attempts for ${calls} calls`);
      assert.ok(attempts > calls, 'some retries were allowed');
    });

    it(`[${target.name}] five failures open the breaker; calls fail fast; one probe after the open period closes it`, async () => {
      const md = marketData();
      let calls = 0;
      let healthy = false;
      await startNode([
        defineService({
          name: md.name,
          actions: [
            handle(md.getPrice, async ({ symbol }) => {
              calls++;
              if (!healthy) throw chassisError('UNAVAILABLE', 'exchange outage');
              await sleep(50);
              return { symbol, price: '91.72' };
            }),
          ],
        }),
      ]);
      // An open period long enough that a stalled test process does not see it end early.
      const openMs = 1500;
      const caller = await startNode([], {
        policies: { call: { retry: false, breaker: { kind: 'consecutive', failures: 5, openMs } } },
      });
      for (let i = 0; i < 5; i++) {
        await assert.rejects(caller.call(md.getPrice, { symbol: 'BHP' }), { code: 'UNAVAILABLE' });
      }
      assert.deepEqual(caller.policies.breakerStates(), [{ target: md.getPrice.name, state: 'open' }]);
      const open = await caller.call(md.getPrice, { symbol: 'BHP' }).catch((e: ChassisError) => e);
      assert.ok(open instanceof ChassisError);
      assert.equal(open.code, 'CIRCUIT_OPEN');
      const { retryAfterMs } = open.data as { retryAfterMs: number };
      assert.ok(retryAfterMs > 0 && retryAfterMs <= openMs, `next probe in ${retryAfterMs} ms`);
      // Failing fast means failing without the call: the handler never saw it.
      assert.equal(calls, 5, 'the open breaker kept the call from the handler');
      await sleep(openMs + 100);
      healthy = true;
      const probes = await Promise.allSettled([1, 2, 3].map(() => caller.call(md.getPrice, { symbol: 'BHP' })));
      assert.equal(calls, 6, 'exactly one probe went through');
      assert.equal(probes.filter((p) => p.status === 'fulfilled').length, 1);
      assert.deepEqual(caller.policies.breakerStates(), [{ target: md.getPrice.name, state: 'closed' }]);
      await caller.call(md.getPrice, { symbol: 'BHP' });
      assert.equal(calls, 7);
    });

    it(`[${target.name}] a service answering domain refusals again and again never opens the breaker`, async () => {
      const md = marketData();
      const UnknownSymbol = defineError('UNKNOWN_SYMBOL', { status: 404, retryable: false });
      const refusals = [
        () => chassisError('NOT_FOUND', 'no such instrument'),
        () => chassisError('FORBIDDEN', 'not entitled to this feed'),
        () => chassisError('CONFLICT', 'price already published'),
        () => UnknownSymbol('no symbol XYZ'),
      ];
      let invocations = 0;
      await startNode([
        defineService({
          name: md.name,
          actions: [
            handle(md.getPrice, () => {
              throw refusals[invocations++ % refusals.length]!();
            }),
          ],
        }),
      ]);
      // Retries on too, so a refusal taken for a failure would also show as extra invocations.
      const caller = await startNode([], {
        policies: {
          call: {
            retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2 },
            breaker: { kind: 'consecutive', failures: 3, openMs: 60_000 },
          },
        },
      });
      const codes: string[] = [];
      for (let i = 0; i < 12; i++) {
        const error = await caller.call(md.getPrice, { symbol: 'XYZ' }).catch((e: unknown) => e);
        assert.ok(error instanceof ChassisError, `call ${i} was refused`);
        codes.push(error.code);
      }
      assert.deepEqual(
        codes,
        [0, 1, 2].flatMap(() => ['NOT_FOUND', 'FORBIDDEN', 'CONFLICT', 'UNKNOWN_SYMBOL']),
      );
      assert.equal(invocations, 12, 'every call reached the service, once');
      assert.deepEqual(caller.policies.breakerStates(), [{ target: md.getPrice.name, state: 'closed' }]);
    });

    it(`[${target.name}] bulkhead: the call beyond the limit waits, the one beyond the queue is refused at once`, async () => {
      const md = marketData();
      // What happened, in order: the bounds are on the order of events, not on the wall clock.
      const log: string[] = [];
      let release!: () => void;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      await startNode([
        defineService({
          name: md.name,
          actions: [
            handle(md.getPrice, async ({ symbol }) => {
              log.push(`start ${symbol}`);
              await released;
              return { symbol, price: '1.17' };
            }),
          ],
        }),
      ]);
      const caller = await startNode([], {
        policies: { call: { retry: false, bulkhead: { maxConcurrent: 2, maxQueued: 1 } } },
      });
      const calls = [0, 1, 2].map((i) =>
        caller.call(md.getPrice, { symbol: `S${i}` }).then(() => log.push(`done S${i}`)),
      );
      const refused = await caller.call(md.getPrice, { symbol: 'S3' }).catch((e: ChassisError) => e);
      assert.ok(refused instanceof ChassisError);
      assert.equal(refused.code, 'BULKHEAD_FULL');
      assert.deepEqual(refused.data, { target: md.getPrice.name, maxConcurrent: 2, maxQueued: 1 });
      log.push('refused S3');
      await waitUntil(() => log.length === 3, { what: 'the first two calls to reach the handler' });
      // Give a third call time it would need to slip past the limit, then check it did not.
      await sleep(200);
      assert.deepEqual(log, ['refused S3', 'start S0', 'start S1']);
      assert.deepEqual(caller.policies.bulkheadUse(), [
        { target: md.getPrice.name, inFlight: 2, queued: 1, maxConcurrent: 2 },
      ]);
      release();
      await Promise.all(calls);
      // The queued call started only once a slot was free, that is after the first two were answered.
      assert.ok(log.indexOf('start S2') > log.indexOf('start S1'), `S2 waited for a slot: ${log}`);
      assert.deepEqual(log.slice(0, 3), ['refused S3', 'start S0', 'start S1']);
      assert.deepEqual(caller.policies.bulkheadUse(), [
        { target: md.getPrice.name, inFlight: 0, queued: 0, maxConcurrent: 2 },
      ]);
    });

    it(`[${target.name}] handler bulkhead and rate limit protect the callee`, async () => {
      const md = marketData();
      await startNode([
        defineService({
          name: md.name,
          actions: [
            handle(md.getPrice, async ({ symbol }) => ({ symbol, price: '1.00' }), {
              rateLimit: { perSecond: 2, burst: 2 },
            }),
          ],
        }),
      ]);
      const caller = await startNode([], { policies: { call: { retry: false } } });
      await caller.call(md.getPrice, { symbol: 'A' });
      await caller.call(md.getPrice, { symbol: 'B' });
      const limited = await caller.call(md.getPrice, { symbol: 'C' }).catch((e: ChassisError) => e);
      assert.ok(limited instanceof ChassisError);
      assert.equal(limited.code, 'RATE_LIMITED');
      assert.equal(limited.status, 429);
      assert.ok((limited.data as { retryAfterMs: number }).retryAfterMs > 0);
    });

    it(`[${target.name}] deadlines: A → B → C with 300 ms and C sleeping 500 ms times out at about 300 ms, and C is aborted`, async () => {
      const a = action(`a-${cluster.suffix}.start`, { input: z.object({}), output: z.object({}) });
      const b = action(`b-${cluster.suffix}.relay`, { input: z.object({}), output: z.object({}) });
      const c = action(`c-${cluster.suffix}.work`, { input: z.object({}), output: z.object({}) });
      let aborted = false;
      await startNode([
        defineService({ name: a.service, actions: [handle(a, (_i, ctx) => ctx.call(b, {}))] }),
        defineService({ name: b.service, actions: [handle(b, (_i, ctx) => ctx.call(c, {}))] }),
      ]);
      await startNode([
        defineService({
          name: c.service,
          actions: [
            handle(c, async (_i, ctx) => {
              await sleep(500, undefined, { signal: ctx.signal }).catch(() => {
                aborted = true;
              });
              return {};
            }),
          ],
        }),
      ]);
      const caller = await startNode([]);
      const started = Date.now();
      await assert.rejects(caller.call(a, {}, { timeoutMs: 300 }), { code: 'TIMEOUT' });
      const elapsed = Date.now() - started;
      // Not before its deadline, and a generous upper bound for a loaded machine: that the deadline
      // travelled down the chain is shown by C's abort below, not by the clock.
      assert.ok(elapsed >= 280 && elapsed < 1500, `A timed out after ${elapsed} ms`);
      await waitUntil(() => aborted, { timeoutMs: 1000, what: "C's abort signal" });
    });

    it(`[${target.name}] fallback and cache: a degraded answer when the target is down; a cached one while fresh`, async () => {
      const md = marketData();
      let calls = 0;
      await startNode([
        defineService({
          name: md.name,
          actions: [
            handle(md.getPrice, ({ symbol }) => {
              calls++;
              return { symbol, price: `9${calls}.00` };
            }),
          ],
        }),
      ]);
      const holdings = await startNode([]);
      const cached = { cache: { ttlMs: 300 } } as const;
      assert.equal((await holdings.call(md.getPrice, { symbol: 'BHP' }, cached)).price, '91.00');
      assert.equal((await holdings.call(md.getPrice, { symbol: 'BHP' }, cached)).price, '91.00');
      assert.equal(calls, 1, 'the second answer came from the cache');
      await sleep(350);
      assert.equal((await holdings.call(md.getPrice, { symbol: 'BHP' }, cached)).price, '92.00');
      const nobody = action(`nobody-${cluster.suffix}.getPrice`, {
        input: md.getPrice.input,
        output: md.getPrice.output,
      });
      const degraded = await holdings.call(
        nobody,
        { symbol: 'GOOG' },
        { fallback: (error, input) => ({ symbol: input.symbol, price: `unknown (${error.code})` }) },
      );
      assert.deepEqual(degraded, { symbol: 'GOOG', price: 'unknown (NO_SERVICE)' });
    });

    it(`[${target.name}] while a handler's dependency is down its events wait in the broker, then all complete`, async () => {
      const md = marketData();
      const orderCreated = event(`orders-${cluster.suffix}.order_created`, z.object({ orderId: z.string() }));
      let exchangeUp = false;
      const placed: string[] = [];
      await startNode([
        defineService({
          name: md.name,
          actions: [
            handle(md.placeOrder, () => {
              if (!exchangeUp) throw chassisError('UNAVAILABLE', 'exchange outage');
              return { ok: true };
            }),
          ],
        }),
      ]);
      const market = await startNode(
        [
          defineService({
            name: `market-${cluster.suffix}`,
            events: [
              on(
                orderCreated,
                async ({ orderId }, ctx) => {
                  await ctx.call(md.placeOrder, { symbol: 'BHP' });
                  placed.push(orderId);
                },
                { maxDeliveries: 2 },
              ),
            ],
          }),
        ],
        { policies: { call: { retry: false, breaker: { kind: 'consecutive', failures: 3, openMs: 200 } } } },
      );
      for (let i = 0; i < 10; i++) await market.emit(orderCreated, { orderId: `o-${i}` });
      await waitUntil(() => market.policies.breakerStates()[0]?.state === 'open', { what: 'the breaker to open' });
      await sleep(500);
      assert.deepEqual(placed, []);
      exchangeUp = true;
      await waitUntil(() => placed.length === 10, { what: 'every order placed after the outage', timeoutMs: 20_000 });
      assert.equal((await market.transport.readDeadLetters(`market-${cluster.suffix}.order_created`)).length, 0);
    });
  });
}
