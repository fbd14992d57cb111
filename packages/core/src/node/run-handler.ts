import { type Context, contextStorage } from '../context.ts';
import type { Invocation } from '../extension.ts';
import type { Span } from '../observability/tracing.ts';
import type { HandlerPolicies } from '../policies/index.ts';
import { HandlerContext } from './handler-context.ts';
import type { Origin } from './origin.ts';
import type { NodeRuntime } from './runtime.ts';

/**
 * Runs a handler inside its context. Its abort signal fires at the deadline (or when a drain gives
 * up). An event handler is also abandoned at its deadline (`race`), so a hung one gives its delivery
 * back; a request handler is not — its caller has stopped waiting anyway, and the late answer is dropped.
 */
export async function runInContext<T>(
  rt: NodeRuntime,
  invocation: Omit<Invocation, 'ctx'>,
  origin: Origin,
  attempt: number,
  span: Span,
  race: boolean,
  run: (ctx: Context) => Promise<T> | T,
): Promise<T> {
  const ctx = enterHandler(rt, invocation.service.name, origin, attempt, span);
  try {
    const work = startInContext(rt, invocation, ctx, run);
    return race ? await Promise.race([work, ctx.expiry()]) : await work;
  } finally {
    leaveHandler(rt, ctx);
  }
}

/** A handler's context, counted in flight (aborted if a drain gives up on it) until `leaveHandler`. */
export function enterHandler(
  rt: NodeRuntime,
  service: string,
  origin: Origin,
  attempt: number,
  span: Span,
): HandlerContext {
  const ctx = new HandlerContext(rt.outbound, service, rt.id, origin, attempt, span, rt.log, rt.flags);
  rt.inFlight.add(ctx);
  return ctx;
}

export function leaveHandler(rt: NodeRuntime, ctx: HandlerContext): void {
  ctx.finish();
  rt.inFlight.delete(ctx);
}

/** Starts a handler inside its async context; extensions wrap it, outermost first, inside it too. */
export function startInContext<T>(
  rt: NodeRuntime,
  invocation: Omit<Invocation, 'ctx'>,
  ctx: HandlerContext,
  run: (ctx: Context) => Promise<T> | T,
): Promise<T> | T {
  return rt.arounds.length === 0
    ? contextStorage.run(ctx, run, ctx)
    : contextStorage.run(ctx, () => wrapped(rt, 0, { ...invocation, ctx }, run));
}

/** The handler inside the extensions from the `index`th inwards. */
async function wrapped<T>(
  rt: NodeRuntime,
  index: number,
  invocation: Invocation,
  run: (ctx: Context) => Promise<T> | T,
): Promise<T> {
  const extension = rt.arounds[index];
  if (!extension) return run(invocation.ctx);
  return extension.around!(invocation, () => wrapped(rt, index + 1, invocation, run)) as Promise<T>;
}

/** A handler's bulkhead and rate limit: its own over the node's, resolved once per handler. */
export function handlerPolicies(rt: NodeRuntime, handler: object, own: HandlerPolicies): Required<HandlerPolicies> {
  let resolved = rt.handlerPolicies.get(handler);
  if (!resolved) {
    resolved = rt.policies.resolveHandler({ bulkhead: own.bulkhead, rateLimit: own.rateLimit });
    rt.handlerPolicies.set(handler, resolved);
  }
  return resolved;
}
