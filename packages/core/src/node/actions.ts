import { type Context, runInContext as runHandlerInContext } from '../context.ts';
import type { ActionContract } from '../contracts.ts';
import { fieldErrors } from '../contracts.ts';
import { ChassisError, timeoutError, toChassisError } from '../errors.ts';
import { outcomeOf } from '../observability/metrics.ts';
import { type Span, SpanKind, Tracing } from '../observability/tracing.ts';
import { alreadyParsed } from '../parsed-input.ts';
import type { HandlerPolicies } from '../policies/index.ts';
import type { ActionHandler, ServiceDefinition } from '../service.ts';
import { isPast } from './deadline.ts';
import { describeFields } from './fields.ts';
import type { HandlerContext } from './handler-context.ts';
import type { Origin } from './origin.ts';
import { enterHandler, handlerPolicies, leaveHandler, runInContext, startInContext } from './run-handler.ts';
import type { NodeRuntime } from './runtime.ts';

/**
 * A request off the wire begins: its server span, the in-flight count. (A local call has no span of its
 * own here: its caller's span covers it, see `callLocal`.)
 */
export function startServing(rt: NodeRuntime, service: ServiceDefinition, action: string, parent: Span): Span {
  rt.metrics.handling.rpc++;
  return (
    rt.tracing.unrecorded(parent) ??
    rt.tracing.record(`serve ${service.name}.${action}`, SpanKind.SERVER, parent, {
      'rpc.system': 'chassis',
      'rpc.service': service.name,
      'rpc.method': action,
    })
  );
}

/** …and ends: the server histogram, the span (when it has its own), the in-flight count. */
export function endServing(
  rt: NodeRuntime,
  service: ServiceDefinition,
  action: string,
  span: Span | undefined,
  started: number,
  failure: unknown,
): void {
  rt.metrics.handling.rpc--;
  rt.metrics.observeServer(service.name, action, outcomeOf(failure), (performance.now() - started) / 1000);
  if (span) Tracing.end(span, failure);
}

/**
 * Runs an action for a request, wherever it came from (the transport or a local call): its deadline,
 * its input against the contract, the caller's identity, the handler's policies, and its output
 * against the contract. Answers with the output, throws a `ChassisError`. `now`: the clock, when the
 * caller has just read it (a local call). `parsedInput`: the input as `parseInput` parsed it (a local
 * call from the gateway, which checked it for its 400); taken as the parsed input only when the very
 * same schema as the handler's contract made it, else the input is parsed here as always.
 *
 * Synchronous as far as it can be: a handler that answers at once (no identity to verify, no bulkhead
 * or rate limit, no extension around it) is answered with its output itself, not a promise, so a local
 * call to it skips the promise, the deadline watch and the hops a pending answer needs (`callLocal`).
 * Callers `await` what it returns either way.
 */
export function runAction(
  rt: NodeRuntime,
  service: ServiceDefinition,
  handler: ActionHandler,
  input: unknown,
  origin: Origin,
  span: Span,
  now: number = Date.now(),
  parsedInput?: unknown,
): unknown {
  const { contract } = handler;
  if (isPast(origin.deadline, now)) {
    // Nobody waits for this answer any more: running it would only waste work.
    rt.log.debug({ action: contract.name }, 'skipped a request whose deadline had passed');
    throw timeoutError(
      { service: contract.service, action: contract.action, timeoutMs: 0 },
      `The deadline of ${contract.name} passed before it was handled`,
    );
  }
  const parsed = alreadyParsed(parsedInput, contract.input) ?? contract.input.safeParse(input);
  if (!parsed.success) {
    const fields = fieldErrors(parsed.error);
    throw new ChassisError('VALIDATION', `Invalid input for ${contract.name}: ${describeFields(fields)}`, {
      data: { action: contract.name, fields },
    });
  }
  const guards = handlerPolicies(rt, handler, handler.policies);
  if ((origin.auth !== undefined && rt.identity) || guards.bulkhead || guards.rateLimit || rt.arounds.length > 0) {
    return runGuarded(rt, service, handler, parsed.data, origin, span, guards);
  }
  // Most handlers have no bulkhead or rate limit: then the handler runs in this function's frame,
  // with no target name built, no closure made, and no promise of `runInContext`'s own.
  const ctx = enterHandler(rt, service.name, origin, 1, span);
  let output: unknown;
  try {
    output = runHandlerInContext(ctx, runHandler, handler, parsed.data, ctx);
  } catch (error) {
    leaveHandler(rt, ctx);
    throw handlerFailed(rt, contract, error);
  }
  if (isThenable(output)) return settled(rt, contract, origin.deadline, ctx, output);
  leaveHandler(rt, ctx);
  return checkedOutput(rt, contract, origin.deadline, output);
}

/** A handler that answered with a promise: its answer once it settles. */
async function settled(
  rt: NodeRuntime,
  contract: ActionContract,
  deadline: number,
  ctx: HandlerContext,
  pending: PromiseLike<unknown>,
): Promise<unknown> {
  let output: unknown;
  try {
    output = await pending;
  } catch (error) {
    throw handlerFailed(rt, contract, error);
  } finally {
    leaveHandler(rt, ctx);
  }
  return checkedOutput(rt, contract, deadline, output);
}

/** A handler behind the caller's identity, its bulkhead or rate limit, or the extensions around it. */
async function runGuarded(
  rt: NodeRuntime,
  service: ServiceDefinition,
  handler: ActionHandler,
  input: unknown,
  origin: Origin,
  span: Span,
  guards: Required<HandlerPolicies>,
): Promise<unknown> {
  const { contract } = handler;
  if (origin.auth !== undefined && rt.identity) origin.user = await rt.identity(origin.auth);
  let output: unknown;
  try {
    if (guards.bulkhead || guards.rateLimit) {
      output = await rt.policies.handle(`${service.name}.${contract.action}`, guards, () =>
        runInContext(rt, { kind: 'action', service }, origin, 1, span, false, (ctx) => handler.run(input, ctx)),
      );
    } else {
      const ctx = enterHandler(rt, service.name, origin, 1, span);
      try {
        output = await (rt.arounds.length === 0
          ? runHandlerInContext(ctx, runHandler, handler, input, ctx)
          : startInContext(rt, { kind: 'action', service }, ctx, (c) => handler.run(input as never, c)));
      } finally {
        leaveHandler(rt, ctx);
      }
    }
  } catch (error) {
    throw handlerFailed(rt, contract, error);
  }
  return checkedOutput(rt, contract, origin.deadline, output);
}

/** What a handler threw, as the error its caller gets; logged as an internal failure or at debug. */
function handlerFailed(rt: NodeRuntime, contract: ActionContract, error: unknown): ChassisError {
  const chassisError = toChassisError(error);
  if (chassisError.code === 'INTERNAL') {
    rt.log.error({ err: error, action: contract.name }, `${contract.name} failed`);
  } else {
    rt.log.debug({ code: chassisError.code, action: contract.name }, `${contract.name} answered ${chassisError.code}`);
  }
  return chassisError;
}

/** A handler's output, on time and as its contract says (when outputs are validated). */
function checkedOutput(rt: NodeRuntime, contract: ActionContract, deadline: number, output: unknown): unknown {
  // Finished after its deadline (its signal aborted, say, and it returned anyway): whatever it
  // returned arrives too late to be an answer.
  if (isPast(deadline, Date.now())) {
    throw timeoutError(
      { service: contract.service, action: contract.action, timeoutMs: 0 },
      `${contract.name} finished after its deadline`,
    );
  }
  if (!rt.settings.validateOutput) return output;
  const checked = contract.output.safeParse(output);
  if (!checked.success) {
    const fields = fieldErrors(checked.error);
    rt.log.error({ action: contract.name, fields }, 'handler output does not match its contract');
    throw new ChassisError(
      'INTERNAL',
      `The output of ${contract.name} does not match its contract: ${describeFields(fields)}`,
      { data: { action: contract.name, fields } },
    );
  }
  return checked.data;
}

/** Whether a handler answered with a promise (or another thenable) rather than its output. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** A handler called as its method, made once rather than a closure per request. */
function runHandler(handler: ActionHandler, input: unknown, ctx: Context): unknown {
  return handler.run(input as never, ctx);
}

export function unknownAction(service: ServiceDefinition, action: string): ChassisError {
  const known = [...service.actions.keys()];
  return new ChassisError(
    'UNKNOWN_ACTION',
    `Service "${service.name}" has no action "${action}"; it serves: ${known.join(', ')}`,
    {
      data: { service: service.name, action, actions: known },
    },
  );
}
