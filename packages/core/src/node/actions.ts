import { type Context, contextStorage } from '../context.ts';
import { fieldErrors } from '../contracts.ts';
import { ChassisError, timeoutError, toChassisError } from '../errors.ts';
import { outcomeOf } from '../observability/metrics.ts';
import { type Span, SpanKind, Tracing } from '../observability/tracing.ts';
import type { ActionHandler, ServiceDefinition } from '../service.ts';
import { isPast } from './deadline.ts';
import { describeFields } from './fields.ts';
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
 * against the contract. Resolves with the output, throws a `ChassisError`.
 */
export async function runAction(
  rt: NodeRuntime,
  service: ServiceDefinition,
  handler: ActionHandler,
  input: unknown,
  origin: Origin,
  span: Span,
): Promise<unknown> {
  const { contract } = handler;
  const { deadline } = origin;
  if (isPast(deadline, Date.now())) {
    // Nobody waits for this answer any more: running it would only waste work.
    rt.log.debug({ action: contract.name }, 'skipped a request whose deadline had passed');
    throw timeoutError(
      { service: contract.service, action: contract.action, timeoutMs: 0 },
      `The deadline of ${contract.name} passed before it was handled`,
    );
  }
  const parsed = contract.input.safeParse(input);
  if (!parsed.success) {
    const fields = fieldErrors(parsed.error);
    throw new ChassisError('VALIDATION', `Invalid input for ${contract.name}: ${describeFields(fields)}`, {
      data: { action: contract.name, fields },
    });
  }
  if (origin.auth !== undefined && rt.identity) origin.user = await rt.identity(origin.auth);
  const guards = handlerPolicies(rt, handler, handler.policies);
  let output: unknown;
  try {
    if (guards.bulkhead || guards.rateLimit) {
      output = await rt.policies.handle(`${service.name}.${contract.action}`, guards, () =>
        runInContext(rt, { kind: 'action', service }, origin, 1, span, false, (ctx) => handler.run(parsed.data, ctx)),
      );
    } else {
      // Most handlers have no bulkhead or rate limit: then the handler runs in this function's frame,
      // with no target name built, no closure made, and no promise of `runInContext`'s own.
      const ctx = enterHandler(rt, service.name, origin, 1, span);
      try {
        output = await (rt.arounds.length === 0
          ? contextStorage.run(ctx, runHandler, handler, parsed.data, ctx)
          : startInContext(rt, { kind: 'action', service }, ctx, (c) => handler.run(parsed.data, c)));
      } finally {
        leaveHandler(rt, ctx);
      }
    }
  } catch (error) {
    const chassisError = toChassisError(error);
    if (chassisError.code === 'INTERNAL') {
      rt.log.error({ err: error, action: contract.name }, `${contract.name} failed`);
    } else {
      rt.log.debug(
        { code: chassisError.code, action: contract.name },
        `${contract.name} answered ${chassisError.code}`,
      );
    }
    throw chassisError;
  }
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
