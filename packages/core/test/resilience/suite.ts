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
      // The waits the policy chose, from the node's own log line for each retry: the time between two
      // attempts also holds the transport's latency, which on a loaded machine swamped the waits
      // (measured at the handler, mean waits of 130 then 120 ms where the policy chose about 50 then 100).
      const chosen: { attempt: number; delayMs: number }[] = [];
      const logger = createLogger({
        nodeId: 'holdings',
        level: 'debug',
        destination: {
          write(line: string) {
            const entry = JSON.parse(line) as { msg?: string; attempt?: number; delayMs?: number };
            if (entry.msg?.startsWith('retrying ')) chosen.push({ attempt: entry.attempt!, delayMs: entry.delayMs! });
          },
        },
      });
      const holdings = await startNode([], {
        logger,
        policies: {
          call: { retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 1000 }, breaker: false },
          // 40 calls needing 80 retries would exhaust the default budget (the next test shows it working).
          retryBudget: { ratio: 2 },
        },
      });
      const symbols = Array.from({ length: 40 }, (_, i) => `S${i}`);
      await Promise.all(symbols.map((symbol) => holdings.call(md.getPrice, { symbol })));
      const gaps = { first: [] as number[], second: [] as number[] };
      for (const symbol of symbols) {
        const [t1, t2, t3] = seen.get(symbol)!;
        assert.equal(seen.get(symbol)!.length, 3, `${symbol} was tried three times`);
        gaps.first.push(t2! - t1!);
        gaps.second.push(t3! - t2!);
      }
      const delays = (attempt: number) => chosen.filter((c) => c.attempt === attempt).map((c) => c.delayMs);
      const [first, second] = [delays(1), delays(2)];
      assert.deepEqual([first.length, second.length], [40, 40], 'one wait chosen per retry');
      const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
      // Full jitter: waits fall anywhere below a ceiling that doubles (100 ms, then 200 ms), so the mean
      // wait doubles too (about 50 then 100 ms).
      assert.ok(
        first.every((d) => d >= 0 && d <= 100),
        `first waits within [0, 100]: ${first}`,
      );
      assert.ok(
        second.every((d) => d >= 0 && d <= 200),
        `second waits within [0, 200]: ${second}`,
      );
      assert.ok(mean(second) > mean(first), `mean waits ${mean(first)} then ${mean(second)} ms should grow`);
      // Of 40 waits below 200 ms, none above 100 would be a chance of 2⁻⁴⁰: the ceiling did double.
      assert.ok(Math.max(...second) > 100, `a second wait above the first ceiling: ${second}`);
      assert.ok(new Set(first).size > 5, 'waits are jittered, not all equal');
      // And each was waited: sorted, the gaps between attempts are at least the sorted waits (there is a
      // pairing of gaps to waits with each gap the longer one). Load only makes gaps longer.
      const ascending = (values: number[]) => [...values].sort((a, b) => a - b);
      for (const [gap, delay] of [
        [gaps.first, first],
        [gaps.second, second],
      ] as const) {
        const [g, d] = [ascending(gap), ascending(delay)];
        assert.ok(
          g.every((x, i) => x >= d[i]! - 2),
          `gaps ${g.map(Math.round)} cover the waits ${d}`,
        );
      }
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
      const openMs = 2000;
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
      // Handlers held until the test lets them go: the order of events shows the bulkhead, where
      // millisecond bounds would depend on the machine's load.
      const md = marketData();
      const entered: string[] = [];
      const release: Record<string, () => void> = {};
      await startNode([
        defineService({
          name: md.name,
          actions: [
            handle(md.getPrice, async ({ symbol }) => {
              entered.push(symbol);
              await new Promise<void>((resolve) => (release[symbol] = resolve));
              return { symbol, price: '1.17' };
            }),
          ],
        }),
      ]);
      const caller = await startNode([], {
        policies: { call: { retry: false, bulkhead: { maxConcurrent: 2, maxQueued: 1 } } },
      });
      const finished: string[] = [];
      const calls = [0, 1, 2].map((i) =>
        caller.call(md.getPrice, { symbol: `S${i}` }).then(() => finished.push(`S${i}`)),
      );
      // (A queued S3 would wait for ever on its held handler: the race ends that wait with a failure.)
      const refused = await Promise.race([
        caller.call(md.getPrice, { symbol: 'S3' }).catch((e: unknown) => e),
        sleep(10_000, 'S3 was not refused'),
      ]);
      assert.ok(refused instanceof ChassisError, String(refused));
      assert.equal(refused.code, 'BULKHEAD_FULL');
      assert.deepEqual(finished, [], 'refused at once, while the others are still held');
      await waitUntil(() => entered.length >= 2, { what: 'the first two calls in their handlers' });
      await sleep(100);
      assert.deepEqual(entered.sort(), ['S0', 'S1'], 'the third waits for a slot');
      release.S0!();
      await waitUntil(() => entered.length >= 3, { what: 'the queued call to take the freed slot' });
      assert.equal(entered[2], 'S2');
      release.S1!();
      release.S2!();
      await Promise.all(calls);
      assert.equal(finished[0], 'S0');
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

    it(`[${target.name}] deadlines: A → B → C with 300 ms and C sleeping 30 s times out at about 300 ms, and C is aborted`, async () => {
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
              await sleep(30_000, undefined, { signal: ctx.signal }).catch(() => {
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
      // Far from C's 30 s; the slack is for a loaded machine. C's abort shows the deadline travelled.
      assert.ok(elapsed >= 280 && elapsed < 10_000, `A timed out after ${elapsed} ms`);
      await waitUntil(() => aborted, { timeoutMs: 10_000, what: "C's abort signal" });
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
      // Long enough that the second call lands within it on a loaded machine.
      const cached = { cache: { ttlMs: 1500 } } as const;
      assert.equal((await holdings.call(md.getPrice, { symbol: 'BHP' }, cached)).price, '91.00');
      assert.equal((await holdings.call(md.getPrice, { symbol: 'BHP' }, cached)).price, '91.00');
      assert.equal(calls, 1, 'the second answer came from the cache');
      await sleep(1550);
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
