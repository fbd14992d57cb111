import { setTimeout as sleep } from 'node:timers/promises';
import { ChassisError } from '../errors.ts';
import { Bulkhead, type BulkheadPolicy } from './bulkhead.ts';
import { type CachePolicy, type CacheStore, cacheKey, MemoryCacheStore } from './cache.ts';
import { type BreakerPolicy, type BreakerState, CircuitBreaker } from './circuit-breaker.ts';
import { applyFallback, canFallBack, type Fallback } from './fallback.ts';
import { type RateLimitOptions, TokenBucket } from './rate-limit.ts';
import { type RetryEvent, type RetryPolicy, retryDelay } from './retry.ts';
import { RetryBudget, type RetryBudgetOptions } from './retry-budget.ts';

export type { BulkheadPolicy } from './bulkhead.ts';
export { type CachePolicy, type CacheStore, cacheKey, MemoryCacheStore, RedisCacheStore } from './cache.ts';
export { type BreakerPolicy, type BreakerState, CircuitBreaker } from './circuit-breaker.ts';
export type { Fallback } from './fallback.ts';
export type { RateLimitOptions } from './rate-limit.ts';
export { fullJitterDelay, type RetryEvent, type RetryPolicy } from './retry.ts';
export type { RetryBudgetOptions } from './retry-budget.ts';

/**
 * Policies on outbound calls. Set at three levels, the nearer winning key by key: the node's defaults,
 * the action's contract (`action(name, { policies })`), and the call (`ctx.call(c, input, { retry })`).
 * `false` turns a policy off.
 */
export interface CallPolicies {
  retry?: RetryPolicy | false;
  breaker?: BreakerPolicy | false;
  bulkhead?: BulkheadPolicy | false;
  /** Only for idempotent actions: others are never cached. */
  cache?: CachePolicy | false;
}

/** Policies on a service's own handlers: node defaults, then `handle(c, fn, { … })` / `on(e, fn, { … })`. */
export interface HandlerPolicies {
  bulkhead?: BulkheadPolicy | false;
  rateLimit?: RateLimitOptions | false;
}

export interface PolicyDefaults {
  call?: CallPolicies;
  handler?: HandlerPolicies;
  /** One budget per target. */
  retryBudget?: RetryBudgetOptions;
  /** Where cached answers live; in memory by default. */
  cacheStore?: CacheStore;
}

/** Safe by default: retries for idempotent calls, a breaker and a bulkhead on every target. */
export const defaultCallPolicies: Required<CallPolicies> = {
  retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 2000 },
  breaker: { kind: 'ratio', threshold: 0.5, windowMs: 10_000, minThroughput: 20, openMs: 10_000 },
  bulkhead: { maxConcurrent: 256, maxQueued: 4096 },
  cache: false,
};

const defaultBreaker = defaultCallPolicies.breaker as BreakerPolicy;

export const defaultHandlerPolicies: Required<HandlerPolicies> = { bulkhead: false, rateLimit: false };

/** What the engine tells about, for logs and metrics. */
export interface PolicyHooks {
  breakerStateChanged?(target: string, state: BreakerState): void;
  retried?(target: string, event: RetryEvent): void;
  retryBudgetExhausted?(target: string): void;
  rejected?(target: string, code: 'BULKHEAD_FULL' | 'RATE_LIMITED' | 'CIRCUIT_OPEN'): void;
  cacheHit?(target: string): void;
  fellBack?(target: string, error: ChassisError): void;
  /** A target got its first breaker, bulkhead, retry state or rate limiter (metrics start its counters at 0). */
  policyCreated?(target: string, kind: PolicyKind): void;
}

/** The policies that keep state per target. */
export type PolicyKind = 'breaker' | 'bulkhead' | 'retry' | 'rateLimit';

/** Whether an attempt answered with a promise (or another thenable) rather than its output. */
function isThenable<T>(value: PromiseLike<T> | T): value is PromiseLike<T> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

export interface GuardedCall<I, O> {
  /** The action's full name: breakers, bulkheads and budgets are kept per target. */
  target: string;
  idempotent: boolean;
  deadline: number;
  input: I;
  policies: Required<CallPolicies>;
  fallback?: Fallback<I, O> | undefined;
  /**
   * `Date.now()` as the caller read it just before, if it did: the first attempt, when it runs at once
   * (`callNow`'s fast path), and the budget and breaker it reports to, go on that reading rather than
   * read the clock once each — on a local call the reads were a tenth of the policies' cost.
   */
  now?: number | undefined;
  /**
   * One attempt: its output, or a promise of it (a local handler that answered at once gives it as is).
   * `now` is the call's own reading, given to the first attempt when it runs in the call's synchronous
   * start; undefined otherwise (a later attempt, or one that waited), and then the attempt reads the clock.
   */
  attempt: (attempt: number, now: number | undefined) => Promise<O> | O;
}

function merge<T extends object>(...levels: (Partial<T> | undefined)[]): T {
  const out: Record<string, unknown> = {};
  for (const level of levels) {
    for (const [key, value] of Object.entries(level ?? {})) if (value !== undefined) out[key] = value;
  }
  return out as T;
}

interface RetryState {
  budget: RetryBudget;
  onRetry: (event: RetryEvent) => void;
  onBudgetExhausted: () => void;
}

/** Holds each target's breaker, bulkhead and retry budget, and runs calls and handlers through them. */
export class PolicyEngine {
  private readonly breakers = new Map<string, CircuitBreaker>();
  private readonly bulkheads = new Map<string, Bulkhead>();
  private readonly retryStates = new Map<string, RetryState>();
  private readonly limiters = new Map<string, TokenBucket>();
  readonly cacheStore: CacheStore;
  private readonly callDefaults: Required<CallPolicies>;
  private readonly handlerDefaults: Required<HandlerPolicies>;

  private readonly defaults: PolicyDefaults;
  private readonly hooks: PolicyHooks;

  constructor(defaults: PolicyDefaults = {}, hooks: PolicyHooks = {}) {
    this.defaults = defaults;
    this.hooks = hooks;
    this.cacheStore = defaults.cacheStore ?? new MemoryCacheStore();
    this.callDefaults = merge<Required<CallPolicies>>(defaultCallPolicies, defaults.call);
    this.handlerDefaults = merge<Required<HandlerPolicies>>(defaultHandlerPolicies, defaults.handler);
  }

  resolveCall(...levels: (CallPolicies | undefined)[]): Required<CallPolicies> {
    return merge<Required<CallPolicies>>(this.callDefaults, ...levels);
  }

  resolveHandler(...levels: (HandlerPolicies | undefined)[]): Required<HandlerPolicies> {
    return merge<Required<HandlerPolicies>>(this.handlerDefaults, ...levels);
  }

  /**
   * Runs a call's attempts, each inside the target's bulkhead, then its breaker, retried as its policy
   * says. The breaker and bulkhead are asked synchronously, so an attempt with a free slot and a closed
   * circuit is one promise around the call itself — and none when the attempt answers at once (a local
   * handler with nothing to wait for): then its output comes back as it is, not in a promise. Callers
   * `await` what this returns either way. (A function per layer — call, retry loop, guarded attempt —
   * cost a promise, an await and a frame each, a tenth of a local call.)
   */
  call<I, O>(call: GuardedCall<I, O>): Promise<O> {
    try {
      return Promise.resolve(this.callNow(call));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** `call`, answering with the output itself when it is there at once (the node's own calls use it). */
  callNow<I, O>(call: GuardedCall<I, O>): Promise<O> | O {
    const { target, policies } = call;
    // A cached call, or a circuit not closed (admitting may throw or send a probe): the full way.
    if (call.idempotent && policies.cache) return this.guarded(call, undefined);
    const breaker = policies.breaker ? this.breakerFor(target, policies.breaker) : undefined;
    if (breaker && breaker.state !== 'closed') return this.guarded(call, undefined);
    const bulkhead = policies.bulkhead ? this.bulkheadFor(target, policies.bulkhead) : undefined;
    if (bulkhead && !bulkhead.tryEnter()) return this.guarded(call, undefined);
    // The first attempt, in the bulkhead's slot, through a closed circuit (which admits without a probe).
    const now = call.now;
    if (policies.retry) this.retryStateFor(target).budget.recordCall(now);
    let first: Promise<O> | O;
    try {
      first = call.attempt(1, now);
    } catch (error) {
      first = Promise.reject(error);
    }
    if (isThenable(first)) {
      // Its success is settled here, as `guarded` would (no async frame, no second look-up of the
      // breaker and bulkhead); a failure goes the full way, to be retried or fallen back on.
      return Promise.resolve(first).then(
        (output) => {
          // Later than the call's start: the breaker reads the clock itself.
          breaker?.succeeded(false);
          bulkhead?.leave();
          return output;
        },
        (error: unknown) => this.guarded(call, Promise.reject(error)),
      );
    }
    breaker?.succeeded(false, now);
    bulkhead?.leave();
    return first;
  }

  /**
   * A call's attempts as `call` describes them; `first` is its first attempt when `call` made it already
   * (in the bulkhead's slot, through a closed circuit, the retry budget told), pending or failed.
   */
  private async guarded<I, O>(call: GuardedCall<I, O>, first: PromiseLike<O> | undefined): Promise<O> {
    const { target, policies } = call;
    const cache = call.idempotent && policies.cache ? policies.cache : undefined;
    const key = cache ? cacheKey(target, call.input) : '';
    if (cache) {
      const hit = await this.cacheStore.get(key).catch(() => undefined);
      if (hit !== undefined) {
        this.hooks.cacheHit?.(target);
        return hit as O;
      }
    }
    const breaker = policies.breaker ? this.breakerFor(target, policies.breaker) : undefined;
    const bulkhead = policies.bulkhead ? this.bulkheadFor(target, policies.bulkhead) : undefined;
    const retry = policies.retry ? this.retryStateFor(target) : undefined;
    try {
      if (first === undefined) retry?.budget.recordCall();
      let output: O;
      for (let attempt = 1; ; attempt++) {
        const made = attempt === 1 ? first : undefined;
        if (made === undefined && bulkhead && !bulkhead.tryEnter()) await bulkhead.waitForSlot();
        let failure: unknown;
        try {
          const probe = made === undefined && breaker ? breaker.admit() : false;
          try {
            output = await (made ?? call.attempt(attempt, undefined));
            breaker?.succeeded(probe);
            break;
          } catch (error) {
            breaker?.failed(error, probe);
            throw error;
          }
        } catch (error) {
          failure = error;
        } finally {
          bulkhead?.leave();
        }
        const delayMs =
          retry && policies.retry
            ? retryDelay(failure, attempt, {
                policy: policies.retry,
                idempotent: call.idempotent,
                deadline: call.deadline,
                ...retry,
              })
            : undefined;
        if (delayMs === undefined) throw failure;
        await sleep(delayMs);
      }
      if (cache) await this.cacheStore.set(key, output, cache.ttlMs).catch(() => undefined);
      return output;
    } catch (error) {
      if (error instanceof ChassisError && (error.code === 'BULKHEAD_FULL' || error.code === 'CIRCUIT_OPEN')) {
        this.hooks.rejected?.(target, error.code);
      }
      if (call.fallback && canFallBack(error)) {
        this.hooks.fellBack?.(target, error);
        return applyFallback(call.fallback, error, call.input);
      }
      throw error;
    }
  }

  /** Runs a handler through its bulkhead and rate limit; `target` is `<service>.<action or handler>`. */
  handle<T>(target: string, policies: Required<HandlerPolicies>, run: () => Promise<T>): Promise<T> {
    // Most handlers have neither: no extra promise on their path.
    if (!policies.rateLimit && !policies.bulkhead) return run();
    return this.guardHandler(target, policies, run);
  }

  private async guardHandler<T>(
    target: string,
    policies: Required<HandlerPolicies>,
    run: () => Promise<T>,
  ): Promise<T> {
    if (policies.rateLimit) {
      const waitMs = this.limiterFor(target, policies.rateLimit).take();
      if (waitMs > 0) {
        this.hooks.rejected?.(target, 'RATE_LIMITED');
        throw new ChassisError('RATE_LIMITED', `${target} takes at most ${policies.rateLimit.perSecond} per second`, {
          data: { target, retryAfterMs: waitMs },
        });
      }
    }
    if (!policies.bulkhead) return run();
    try {
      return await this.bulkheadFor(target, policies.bulkhead).execute(run);
    } catch (error) {
      if (error instanceof ChassisError && error.code === 'BULKHEAD_FULL')
        this.hooks.rejected?.(target, 'BULKHEAD_FULL');
      throw error;
    }
  }

  /**
   * The breaker of a target that is not an action (an HTTP API, a third party), made with `settings` on
   * first use and shared from then on: its state is in the node's metrics, logs and readiness as the
   * breakers of actions are.
   */
  breaker(target: string, settings: BreakerPolicy = this.callDefaults.breaker || defaultBreaker): CircuitBreaker {
    return this.breakerFor(target, settings);
  }

  /** The state of every breaker, for health checks, metrics and operators. */
  breakerStates(): { target: string; state: BreakerState }[] {
    return [...this.breakers.values()].map((breaker) => ({ target: breaker.target, state: breaker.state }));
  }

  bulkheadUse(): { target: string; inFlight: number; queued: number; maxConcurrent: number }[] {
    return [...this.bulkheads.values()].map((b) => ({
      target: b.target,
      inFlight: b.inFlight,
      queued: b.queued,
      maxConcurrent: b.settings.maxConcurrent,
    }));
  }

  private breakerFor(target: string, settings: BreakerPolicy): CircuitBreaker {
    let breaker = this.breakers.get(target);
    if (!breaker) {
      breaker = new CircuitBreaker(target, settings, (state) => this.hooks.breakerStateChanged?.(target, state));
      this.breakers.set(target, breaker);
      this.hooks.policyCreated?.(target, 'breaker');
    }
    return breaker;
  }

  private bulkheadFor(target: string, settings: BulkheadPolicy): Bulkhead {
    let bulkhead = this.bulkheads.get(target);
    if (!bulkhead) {
      bulkhead = new Bulkhead(target, settings);
      this.bulkheads.set(target, bulkhead);
      this.hooks.policyCreated?.(target, 'bulkhead');
    }
    return bulkhead;
  }

  /** The target's retry budget, and the hooks its retries report to (made once per target). */
  private retryStateFor(target: string): RetryState {
    let state = this.retryStates.get(target);
    if (!state) {
      state = {
        budget: new RetryBudget(this.defaults.retryBudget),
        onRetry: (event) => this.hooks.retried?.(target, event),
        onBudgetExhausted: () => this.hooks.retryBudgetExhausted?.(target),
      };
      this.retryStates.set(target, state);
      this.hooks.policyCreated?.(target, 'retry');
    }
    return state;
  }

  private limiterFor(target: string, settings: RateLimitOptions): TokenBucket {
    let limiter = this.limiters.get(target);
    if (!limiter) {
      limiter = new TokenBucket(settings);
      this.limiters.set(target, limiter);
      this.hooks.policyCreated?.(target, 'rateLimit');
    }
    return limiter;
  }
}
