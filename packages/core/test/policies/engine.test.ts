import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { ChassisError, chassisError } from '../../src/errors.ts';
import {
  type CacheStore,
  type CallPolicies,
  defaultCallPolicies,
  defaultHandlerPolicies,
  type GuardedCall,
  MemoryCacheStore,
  PolicyEngine,
  type PolicyHooks,
} from '../../src/policies/index.ts';

/** Every hook the engine calls, in order, as `hook target detail`. */
function recorder() {
  const seen: string[] = [];
  const created: string[] = [];
  const hooks: Required<PolicyHooks> = {
    breakerStateChanged: (target, state) => seen.push(`breaker ${target} ${state}`),
    retried: (target, { attempt, error }) => seen.push(`retried ${target} ${attempt} ${error.code}`),
    retryBudgetExhausted: (target) => seen.push(`budget ${target}`),
    rejected: (target, code) => seen.push(`rejected ${target} ${code}`),
    cacheHit: (target) => seen.push(`cacheHit ${target}`),
    fellBack: (target, error) => seen.push(`fellBack ${target} ${error.code}`),
    // Kept apart: the sequences the tests below expect are of what happened to calls.
    policyCreated: (target, kind) => created.push(`${kind} ${target}`),
  };
  return { seen, created, hooks };
}

const quickRetry = { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 1 };
const none: CallPolicies = { retry: false, breaker: false, bulkhead: false, cache: false };

/** A call whose attempts answer from `answers` in turn (an error is thrown), counting them. */
function callOf<O>(
  engine: PolicyEngine,
  answers: (O | Error)[],
  options: Omit<Partial<GuardedCall<{ symbol: string }, O>>, 'policies'> & { policies?: CallPolicies } = {},
) {
  const attempts: number[] = [];
  const { policies, ...rest } = options;
  const run = () =>
    engine.call<{ symbol: string }, O>({
      target: 'md.getPrice',
      idempotent: true,
      deadline: Number.POSITIVE_INFINITY,
      input: { symbol: 'BHP' },
      policies: engine.resolveCall(none, policies),
      attempt: async (attempt) => {
        attempts.push(attempt);
        const answer = answers[Math.min(attempts.length, answers.length) - 1]!;
        if (answer instanceof Error) throw answer;
        return answer;
      },
      ...rest,
    });
  return { run, attempts };
}

describe('policy engine', () => {
  describe('resolving policies', () => {
    it('safe defaults: retries, a ratio breaker and a bulkhead on calls; nothing on handlers', () => {
      assert.deepEqual(defaultCallPolicies, {
        retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 2000 },
        breaker: { kind: 'ratio', threshold: 0.5, windowMs: 10_000, minThroughput: 20, openMs: 10_000 },
        bulkhead: { maxConcurrent: 256, maxQueued: 4096 },
        cache: false,
      });
      assert.deepEqual(defaultHandlerPolicies, { bulkhead: false, rateLimit: false });
      assert.deepEqual(new PolicyEngine().resolveCall(), defaultCallPolicies);
      assert.deepEqual(new PolicyEngine().resolveHandler(), defaultHandlerPolicies);
    });

    it('the nearer level wins key by key; undefined leaves the farther one; false turns a policy off', () => {
      const engine = new PolicyEngine({ call: { cache: { ttlMs: 1000 }, bulkhead: false } });
      const contract: CallPolicies = { retry: { maxAttempts: 5, initialDelayMs: 10, maxDelayMs: 100 } };
      const call: CallPolicies = { retry: undefined, breaker: false };
      assert.deepEqual(engine.resolveCall(contract, call), {
        retry: { maxAttempts: 5, initialDelayMs: 10, maxDelayMs: 100 },
        breaker: false,
        bulkhead: false,
        cache: { ttlMs: 1000 },
      });
      assert.deepEqual(engine.resolveCall(undefined, { retry: false }).retry, false);
    });

    it('handler policies merge the same way', () => {
      const engine = new PolicyEngine({ handler: { rateLimit: { perSecond: 10 } } });
      assert.deepEqual(engine.resolveHandler({ bulkhead: { maxConcurrent: 1, maxQueued: 0 } }), {
        bulkhead: { maxConcurrent: 1, maxQueued: 0 },
        rateLimit: { perSecond: 10 },
      });
      assert.deepEqual(engine.resolveHandler({ rateLimit: false }).rateLimit, false);
    });
  });

  describe('calls', () => {
    it('with every policy off, one attempt and its answer or error as they are', async () => {
      const engine = new PolicyEngine();
      assert.equal(await callOf(engine, ['91.72']).run(), '91.72');
      const error = chassisError('UNAVAILABLE', 'down');
      const failing = callOf(engine, [error]);
      await assert.rejects(failing.run(), (e: unknown) => e === error);
      assert.deepEqual(failing.attempts, [1]);
      assert.deepEqual(engine.breakerStates(), []);
      assert.deepEqual(engine.bulkheadUse(), []);
    });

    it('retries retryable failures, telling the hook of each', async () => {
      const { seen, hooks } = recorder();
      const engine = new PolicyEngine({}, hooks);
      const call = callOf(engine, [chassisError('UNAVAILABLE', 'a'), chassisError('TIMEOUT', 'b'), 'ok'], {
        policies: { retry: quickRetry },
      });
      assert.equal(await call.run(), 'ok');
      assert.deepEqual(call.attempts, [1, 2, 3]);
      assert.deepEqual(seen, ['retried md.getPrice 1 UNAVAILABLE', 'retried md.getPrice 2 TIMEOUT']);
    });

    it('tells once per target when it makes a policy that keeps state (metrics start their counters then)', async () => {
      const { created, hooks } = recorder();
      const engine = new PolicyEngine({}, hooks);
      const guarded = { ...defaultCallPolicies, retry: quickRetry };
      const call = callOf(engine, ['ok', 'ok'], { policies: guarded });
      await call.run();
      await call.run();
      assert.deepEqual(created.sort(), ['breaker md.getPrice', 'bulkhead md.getPrice', 'retry md.getPrice']);
      await callOf(engine, ['ok'], { target: 'md.getHistory', policies: { ...guarded, retry: false } }).run();
      assert.deepEqual(created.slice(3).sort(), ['breaker md.getHistory', 'bulkhead md.getHistory']);
    });

    it('one retry budget per target, made from the node defaults', async () => {
      const { seen, hooks } = recorder();
      const engine = new PolicyEngine({ retryBudget: { minRetries: 1, ratio: 0 } }, hooks);
      const down = chassisError('UNAVAILABLE', 'down');
      const first = callOf(engine, [down], { policies: { retry: quickRetry } });
      await assert.rejects(first.run(), { code: 'UNAVAILABLE' });
      assert.deepEqual(first.attempts, [1, 2], 'the one retry of the budget, then it is spent');
      assert.deepEqual(seen, ['retried md.getPrice 1 UNAVAILABLE', 'budget md.getPrice']);
      // The budget is the target's, not the call's: the next call finds it spent.
      await assert.rejects(first.run(), { code: 'UNAVAILABLE' });
      assert.deepEqual(first.attempts, [1, 2, 1]);
      assert.deepEqual(seen, ['retried md.getPrice 1 UNAVAILABLE', 'budget md.getPrice', 'budget md.getPrice']);
      const other = callOf(engine, [down, 'ok'], { target: 'md.getHistory', policies: { retry: quickRetry } });
      assert.equal(await other.run(), 'ok', 'another target has a budget of its own');
    });

    it("a target's spent retry budget comes back once its window has passed", async () => {
      mock.timers.enable({ apis: ['Date'], now: 3_000_000 });
      try {
        const { seen, hooks } = recorder();
        const engine = new PolicyEngine({ retryBudget: { minRetries: 1, ratio: 0, windowMs: 1000 } }, hooks);
        const call = callOf(engine, [chassisError('UNAVAILABLE', 'down')], { policies: { retry: quickRetry } });
        await assert.rejects(call.run(), { code: 'UNAVAILABLE' });
        await assert.rejects(call.run(), { code: 'UNAVAILABLE' });
        assert.deepEqual(call.attempts, [1, 2, 1]);
        mock.timers.tick(999);
        await assert.rejects(call.run(), { code: 'UNAVAILABLE' });
        assert.deepEqual(call.attempts, [1, 2, 1, 1], 'still spent inside the window');
        mock.timers.tick(1);
        await assert.rejects(call.run(), { code: 'UNAVAILABLE' });
        assert.deepEqual(call.attempts, [1, 2, 1, 1, 1, 2], 'a retry again once the window has passed');
        assert.equal(seen.filter((s) => s.startsWith('retried')).length, 2);
      } finally {
        mock.timers.reset();
      }
    });

    it('a bulkhead without a breaker still runs the attempt inside it', async () => {
      const engine = new PolicyEngine();
      const call = callOf(engine, ['ok'], { policies: { bulkhead: { maxConcurrent: 1, maxQueued: 0 } } });
      assert.equal(await call.run(), 'ok');
      assert.deepEqual(call.attempts, [1]);
      assert.deepEqual(engine.breakerStates(), []);
      assert.deepEqual(engine.bulkheadUse(), [{ target: 'md.getPrice', inFlight: 0, queued: 0, maxConcurrent: 1 }]);
    });

    it('an engine without hooks takes every path a hook would be told of', async () => {
      const engine = new PolicyEngine({ retryBudget: { minRetries: 1, ratio: 0 } });
      const down = chassisError('UNAVAILABLE', 'down');
      const policies: CallPolicies = {
        retry: quickRetry,
        breaker: { kind: 'consecutive', failures: 3, openMs: 60_000 },
        cache: { ttlMs: 60_000 },
      };
      // A retry, then the budget spent; three failures open the breaker; the open breaker is rejected.
      await assert.rejects(callOf(engine, [down], { policies }).run(), { code: 'UNAVAILABLE' });
      await assert.rejects(callOf(engine, [down], { policies }).run(), { code: 'UNAVAILABLE' });
      await assert.rejects(callOf(engine, [down], { policies }).run(), { code: 'CIRCUIT_OPEN' });
      assert.equal(await callOf<string>(engine, [down], { policies, fallback: { value: 'stale' } }).run(), 'stale');
      const other = { ...policies, breaker: false } as const;
      assert.equal(await callOf(engine, ['fresh'], { target: 'md.other', policies: other }).run(), 'fresh');
      assert.equal(await callOf(engine, ['again'], { target: 'md.other', policies: other }).run(), 'fresh');
      let release!: () => void;
      const held = new Promise<string>((resolve) => {
        release = () => resolve('held');
      });
      const full = { bulkhead: { maxConcurrent: 1, maxQueued: 0 } };
      const running = callOf<string>(engine, [], { target: 'md.slow', policies: full, attempt: () => held }).run();
      await assert.rejects(callOf(engine, ['x'], { target: 'md.slow', policies: full }).run(), {
        code: 'BULKHEAD_FULL',
      });
      const handler = engine.resolveHandler({ bulkhead: { maxConcurrent: 1, maxQueued: 0 } });
      const handling = engine.handle('svc.h', handler, () => held);
      await assert.rejects(
        engine.handle('svc.h', handler, async () => 'x'),
        { code: 'BULKHEAD_FULL' },
      );
      const limited = engine.resolveHandler({ rateLimit: { perSecond: 1, burst: 1 } });
      await engine.handle('svc.r', limited, async () => 'x');
      await assert.rejects(
        engine.handle('svc.r', limited, async () => 'x'),
        { code: 'RATE_LIMITED' },
      );
      release();
      assert.deepEqual(await Promise.all([running, handling]), ['held', 'held']);
    });

    it('without a cache policy the cache store is never asked', async () => {
      const asked: string[] = [];
      const store: CacheStore = {
        get: async (key) => {
          asked.push(`get ${key}`);
          return 'from the store';
        },
        set: async (key) => {
          asked.push(`set ${key}`);
        },
      };
      const engine = new PolicyEngine({ cacheStore: store });
      assert.equal(await callOf(engine, ['fresh']).run(), 'fresh');
      assert.equal(
        await callOf(engine, ['fresh'], { idempotent: false, policies: { cache: { ttlMs: 1000 } } }).run(),
        'fresh',
      );
      assert.deepEqual(asked, []);
    });

    it('a non-idempotent call is not retried', async () => {
      const engine = new PolicyEngine();
      const call = callOf(engine, [chassisError('UNAVAILABLE', 'down'), 'ok'], {
        idempotent: false,
        policies: { retry: quickRetry },
      });
      await assert.rejects(call.run(), { code: 'UNAVAILABLE' });
      assert.deepEqual(call.attempts, [1]);
    });

    it('each attempt goes through the breaker: once it opens the retries stop with CIRCUIT_OPEN', async () => {
      const { seen, hooks } = recorder();
      const engine = new PolicyEngine({}, hooks);
      const call = callOf<string>(engine, [chassisError('UNAVAILABLE', 'down')], {
        policies: {
          retry: { ...quickRetry, maxAttempts: 5 },
          breaker: { kind: 'consecutive', failures: 2, openMs: 60_000 },
        },
      });
      // The second failure opens the breaker; the third attempt meets it open and the retries end there.
      await assert.rejects(call.run(), { code: 'CIRCUIT_OPEN' });
      assert.deepEqual(call.attempts, [1, 2]);
      assert.deepEqual(engine.breakerStates(), [{ target: 'md.getPrice', state: 'open' }]);
      await assert.rejects(call.run(), { code: 'CIRCUIT_OPEN' });
      assert.deepEqual(call.attempts, [1, 2], 'the open breaker kept the next call from the target');
      assert.deepEqual(seen, [
        'retried md.getPrice 1 UNAVAILABLE',
        'breaker md.getPrice open',
        'retried md.getPrice 2 UNAVAILABLE',
        'rejected md.getPrice CIRCUIT_OPEN',
        'rejected md.getPrice CIRCUIT_OPEN',
      ]);
    });

    it('one breaker per target, kept with the settings of its first use; breaker() shares it', async () => {
      const engine = new PolicyEngine({ call: { breaker: { kind: 'consecutive', failures: 1, openMs: 60_000 } } });
      const call = callOf<string>(engine, [chassisError('UNAVAILABLE', 'down')], {
        policies: { breaker: { kind: 'consecutive', failures: 1, openMs: 60_000 } },
      });
      await assert.rejects(call.run(), { code: 'UNAVAILABLE' });
      const shared = engine.breaker('md.getPrice', { kind: 'consecutive', failures: 100, openMs: 1 });
      assert.equal(shared.state, 'open');
      assert.deepEqual(shared.settings, { kind: 'consecutive', failures: 1, openMs: 60_000 });
      const outside = engine.breaker('https://api.exchange.example');
      assert.deepEqual(outside.settings, { kind: 'consecutive', failures: 1, openMs: 60_000 });
      assert.deepEqual(engine.breakerStates(), [
        { target: 'md.getPrice', state: 'open' },
        { target: 'https://api.exchange.example', state: 'closed' },
      ]);
    });

    it("breaker() uses the built-in breaker when the node's default turns breakers off", () => {
      const engine = new PolicyEngine({ call: { breaker: false } });
      assert.deepEqual(engine.breaker('third-party').settings, defaultCallPolicies.breaker);
    });

    it('the bulkhead is outside the breaker: a full bulkhead does not count against the target', async () => {
      const { seen, hooks } = recorder();
      const engine = new PolicyEngine({}, hooks);
      let release!: () => void;
      const held = new Promise<string>((resolve) => {
        release = () => resolve('held');
      });
      const policies: CallPolicies = {
        bulkhead: { maxConcurrent: 1, maxQueued: 0 },
        breaker: { kind: 'consecutive', failures: 1, openMs: 60_000 },
      };
      const slow = callOf<string>(engine, [], { policies, attempt: () => held });
      const running = slow.run();
      const refused = callOf(engine, ['fast'], { policies });
      for (let i = 0; i < 3; i++) await assert.rejects(refused.run(), { code: 'BULKHEAD_FULL' });
      assert.deepEqual(refused.attempts, []);
      assert.deepEqual(engine.breakerStates(), [{ target: 'md.getPrice', state: 'closed' }]);
      assert.deepEqual(engine.bulkheadUse(), [{ target: 'md.getPrice', inFlight: 1, queued: 0, maxConcurrent: 1 }]);
      release();
      assert.equal(await running, 'held');
      assert.equal(await refused.run(), 'fast');
      assert.deepEqual(seen, Array(3).fill('rejected md.getPrice BULKHEAD_FULL'));
    });

    it('falls back on failures of the target, telling the hook, but never on a refusal', async () => {
      const { seen, hooks } = recorder();
      const engine = new PolicyEngine({}, hooks);
      const degraded = callOf<string>(engine, [chassisError('UNAVAILABLE', 'down')], {
        fallback: (error, input) => `${input.symbol} unknown (${error.code})`,
      });
      assert.equal(await degraded.run(), 'BHP unknown (UNAVAILABLE)');
      const refused = callOf<string>(engine, [chassisError('NOT_FOUND', 'no BHP')], { fallback: { value: 'never' } });
      await assert.rejects(refused.run(), { code: 'NOT_FOUND' });
      const plain = callOf<string>(engine, [new Error('a bug in the client')], { fallback: { value: 'never' } });
      await assert.rejects(plain.run(), /a bug in the client/);
      assert.deepEqual(seen, ['fellBack md.getPrice UNAVAILABLE']);
    });

    it('falls back after the retries are used up, and when the breaker is open', async () => {
      const engine = new PolicyEngine();
      const call = callOf<string>(engine, [chassisError('UNAVAILABLE', 'down')], {
        fallback: { value: 'stale' },
        policies: { retry: quickRetry, breaker: { kind: 'consecutive', failures: 3, openMs: 60_000 } },
      });
      assert.equal(await call.run(), 'stale');
      assert.deepEqual(call.attempts, [1, 2, 3]);
      assert.equal(await call.run(), 'stale');
      assert.deepEqual(call.attempts, [1, 2, 3], 'the second answer came from the fallback alone');
    });
  });

  describe('cache', () => {
    const cached: CallPolicies = { cache: { ttlMs: 60_000 } };

    it('answers a repeated idempotent call from the cache, telling the hook', async () => {
      const { seen, hooks } = recorder();
      const engine = new PolicyEngine({}, hooks);
      const call = callOf(engine, [{ price: '91.72' }, { price: '99.00' }], { policies: cached });
      assert.deepEqual(await call.run(), { price: '91.72' });
      assert.deepEqual(await call.run(), { price: '91.72' });
      assert.deepEqual(call.attempts, [1]);
      assert.deepEqual(seen, ['cacheHit md.getPrice']);
    });

    it('keys by target and input', async () => {
      const engine = new PolicyEngine();
      const a = callOf(engine, ['a'], { policies: cached });
      const b = callOf(engine, ['b'], { policies: cached, input: { symbol: 'RIO' } });
      const c = callOf(engine, ['c'], { policies: cached, target: 'md.getHistory' });
      assert.deepEqual([await a.run(), await b.run(), await c.run()], ['a', 'b', 'c']);
    });

    it('never caches a non-idempotent call', async () => {
      const engine = new PolicyEngine();
      const call = callOf(engine, ['first', 'second'], { policies: cached, idempotent: false });
      assert.equal(await call.run(), 'first');
      assert.equal(await call.run(), 'second');
    });

    it('does not cache a failure, nor a fallback', async () => {
      const engine = new PolicyEngine();
      const call = callOf(engine, [chassisError('UNAVAILABLE', 'down'), 'fresh'], {
        policies: cached,
        fallback: { value: 'stale' },
      });
      assert.equal(await call.run(), 'stale');
      assert.equal(await call.run(), 'fresh');
      assert.equal(await call.run(), 'fresh');
      assert.deepEqual(call.attempts, [1, 1], 'two calls reached the target, the third was a hit');
    });

    it('a cache store that fails is a miss, not a failed call', async () => {
      const broken: CacheStore = {
        get: async () => {
          throw new Error('Redis is away');
        },
        set: async () => {
          throw new Error('Redis is away');
        },
      };
      const engine = new PolicyEngine({ cacheStore: broken });
      const call = callOf(engine, ['a', 'b'], { policies: cached });
      assert.equal(await call.run(), 'a');
      assert.equal(await call.run(), 'b');
    });

    it('uses the memory store by default, the given one otherwise', () => {
      assert.ok(new PolicyEngine().cacheStore instanceof MemoryCacheStore);
      const store = new MemoryCacheStore(1);
      assert.equal(new PolicyEngine({ cacheStore: store }).cacheStore, store);
    });
  });

  describe('handlers', () => {
    it('with neither policy the handler runs as it is, with no promise of the engine around it', () => {
      const engine = new PolicyEngine();
      const answer = Promise.resolve('done');
      assert.equal(
        engine.handle('svc.h', engine.resolveHandler(), () => answer),
        answer,
      );
    });

    it('a rate limit refuses with RATE_LIMITED (429, retryable) and when to come back, per target', async () => {
      const { seen, hooks } = recorder();
      const engine = new PolicyEngine({}, hooks);
      const policies = engine.resolveHandler({ rateLimit: { perSecond: 2, burst: 2 } });
      let runs = 0;
      const run = async () => ++runs;
      await engine.handle('svc.h', policies, run);
      await engine.handle('svc.h', policies, run);
      const limited = await engine.handle('svc.h', policies, run).catch((e: unknown) => e);
      assert.ok(limited instanceof ChassisError);
      assert.equal(limited.code, 'RATE_LIMITED');
      assert.equal(limited.status, 429);
      assert.equal(limited.retryable, true);
      assert.equal(limited.message, 'svc.h takes at most 2 per second');
      const { target, retryAfterMs } = limited.data as { target: string; retryAfterMs: number };
      assert.equal(target, 'svc.h');
      assert.ok(retryAfterMs > 0 && retryAfterMs <= 500, `${retryAfterMs}`);
      assert.equal(runs, 2, 'the refused message never reached the handler');
      assert.equal(await engine.handle('svc.other', policies, run), 3, 'another handler has its own bucket');
      assert.deepEqual(seen, ['rejected svc.h RATE_LIMITED']);
    });

    it('a handler bulkhead refuses with BULKHEAD_FULL beyond its queue, telling the hook', async () => {
      const { seen, hooks } = recorder();
      const engine = new PolicyEngine({}, hooks);
      const policies = engine.resolveHandler({ bulkhead: { maxConcurrent: 1, maxQueued: 0 } });
      let release!: () => void;
      const held = new Promise<string>((resolve) => {
        release = () => resolve('held');
      });
      const running = engine.handle('svc.h', policies, () => held);
      await assert.rejects(
        engine.handle('svc.h', policies, async () => 'second'),
        { code: 'BULKHEAD_FULL' },
      );
      assert.deepEqual(engine.bulkheadUse(), [{ target: 'svc.h', inFlight: 1, queued: 0, maxConcurrent: 1 }]);
      assert.deepEqual(seen, ['rejected svc.h BULKHEAD_FULL']);
      release();
      assert.equal(await running, 'held');
      // The handler's own errors are not rejections.
      const error = chassisError('CONFLICT', 'handler refused');
      await assert.rejects(
        engine.handle('svc.h', policies, async () => {
          throw error;
        }),
        (e: unknown) => e === error,
      );
      assert.deepEqual(seen, ['rejected svc.h BULKHEAD_FULL']);
    });

    it('a rate-limited message does not take a bulkhead slot', async () => {
      const engine = new PolicyEngine();
      const policies = engine.resolveHandler({
        rateLimit: { perSecond: 1, burst: 1 },
        bulkhead: { maxConcurrent: 1, maxQueued: 0 },
      });
      assert.equal(await engine.handle('svc.h', policies, async () => 'one'), 'one');
      await assert.rejects(
        engine.handle('svc.h', policies, async () => 'two'),
        { code: 'RATE_LIMITED' },
      );
      assert.deepEqual(engine.bulkheadUse(), [{ target: 'svc.h', inFlight: 0, queued: 0, maxConcurrent: 1 }]);
    });
  });
});
