import type { CallOptions } from '../context.ts';
import type { ActionContract, InputOf, OutputOf } from '../contracts.ts';
import { decodeBody, encodeTimeoutMs, Header } from '../envelope.ts';
import { ChassisError, timeoutError } from '../errors.ts';
import { outcomeOf } from '../observability/metrics.ts';
import { noSpan, type Span, SpanKind, Tracing } from '../observability/tracing.ts';
import type { ParsedInput } from '../parsed-input.ts';
import type { Fallback } from '../policies/fallback.ts';
import type { CallPolicies, GuardedCall } from '../policies/index.ts';
import { resolveDeadline } from '../policies/timeout.ts';
import type { ServiceDefinition } from '../service.ts';
import { isThenable } from './actions.ts';
import { isPast, timeLeft } from './deadline.ts';
import { callLocal, localService } from './local-calls.ts';
import type { Origin } from './origin.ts';
import { encode, headersFor } from './outgoing.ts';
import type { NodeRuntime } from './runtime.ts';

/** What a call from outside any handler may add: the edge's correlation id and the caller's token. */
export interface OutsideCallOptions<C extends ActionContract = ActionContract> extends CallOptions<C> {
  correlationId?: string;
  /** The W3C trace context the call continues (the gateway passes the HTTP request's). */
  traceparent?: string;
  tracestate?: string;
  /**
   * `input` as `parseInput` parsed it against this contract, by a caller that had to check it anyway
   * (the gateway, for its 400): a handler on this node with the same schema takes it as parsed instead
   * of parsing `input` again, on the call's first attempt. The wire carries `input` as it is.
   */
  parsedInput?: ParsedInput<C>;
}

/**
 * A call from outside any handler (a script, a test, the gateway): it inherits no deadline, and starts
 * new work, so it waits to be admitted while the transport says too much accepted work is pending
 * (`maxEventDelayMs`).
 */
export function admitFromOutside<C extends ActionContract>(
  rt: NodeRuntime,
  contract: C,
  input: InputOf<C>,
  options: OutsideCallOptions<C>,
): Promise<OutputOf<C>> {
  return settle(admitNow(rt, contract, input, options));
}

/**
 * `admitFromOutside`, answering with the output itself when a local handler gave it at once — no
 * promise, no hop through the microtask queue (`ChassisNode.callNow`) — else a promise; a failure before
 * the call went anywhere is a rejected promise, never a throw.
 */
export function admitNow<C extends ActionContract>(
  rt: NodeRuntime,
  contract: C,
  input: InputOf<C>,
  options: OutsideCallOptions<C>,
): Promise<OutputOf<C>> | OutputOf<C> {
  const maxDelayMs = rt.settings.maxEventDelayMs;
  if (!(maxDelayMs < Number.POSITIVE_INFINITY) || rt.transport.admit === undefined) {
    return sendNow(rt, contract, input, options, outsideOrigin(rt, options), Date.now(), options.parsedInput);
  }
  const now = Date.now();
  const deadline = resolveDeadline({
    now,
    callTimeoutMs: options.timeoutMs,
    callDeadline: options.deadline,
    contractTimeoutMs: contract.timeoutMs,
    defaultTimeoutMs: rt.settings.callTimeoutMs,
    inherited: Number.POSITIVE_INFINITY,
  });
  const timeLeft = Math.max(0, deadline - now);
  const admitted = rt.transport.admit(maxDelayMs, timeLeft);
  // Admitted at once: the call starts now, on this reading of the clock.
  if (admitted === undefined) {
    return sendNow(rt, contract, input, options, outsideOrigin(rt, options), now, options.parsedInput);
  }
  // The wait counts against the call's time: it goes on with what is left of its deadline.
  return admitted.then(
    (done) => {
      const call = callFromOutside(rt, contract, input, { ...options, deadline });
      call.then(done, done);
      return call;
    },
    () => {
      throw timeoutError(
        { service: contract.service, action: contract.action, timeoutMs: timeLeft },
        `${contract.name} waited ${timeLeft} ms to be admitted: the system was still busy with the work it had accepted`,
      );
    },
  );
}

/** A call from outside any handler (a script, a test, the gateway): it inherits no deadline. */
export function callFromOutside<C extends ActionContract>(
  rt: NodeRuntime,
  contract: C,
  input: InputOf<C>,
  options: OutsideCallOptions<C>,
): Promise<OutputOf<C>> {
  return send(rt, contract, input, options, outsideOrigin(rt, options));
}

/** Where a call from outside any handler comes from: no deadline, the edge's ids, token and trace. */
function outsideOrigin(rt: NodeRuntime, options: OutsideCallOptions): Origin {
  return {
    messageId: '',
    correlationId: options.correlationId,
    deadline: Number.POSITIVE_INFINITY,
    auth: options.auth,
    trace:
      options.traceparent === undefined
        ? noSpan
        : rt.tracing.extract({
            traceparent: options.traceparent,
            ...(options.tracestate === undefined ? {} : { tracestate: options.tracestate }),
          }),
    inherited: false,
  };
}

/** An answer as a promise: the output itself resolved, a pending or failed one as it is. */
function settle<O>(answer: Promise<O> | O): Promise<O> {
  return isThenable(answer) ? (answer as Promise<O>) : Promise.resolve(answer);
}

/**
 * A call: its deadline, its span and client metrics, and its attempts as the call's policies run them.
 *
 * A call served over the wire has a client span here and a server span where it is served. A local call
 * has one span, this one (kind INTERNAL, `chassis.local`), which its handler runs under as its
 * `ctx.span`: in one process a second span would only repeat the first one's timing, at the cost of a
 * whole span (a third of the work of a local call when recorded).
 *
 * The clock is read once here (`now`, unless the caller has just read it) and that reading serves the
 * call's synchronous start: its deadline, the retry budget and breaker, and a first attempt made at once
 * (a local one's deadline check too). Each read its own before, six reads of the clock a local call.
 */
export function send<C extends ActionContract>(
  rt: NodeRuntime,
  contract: C,
  input: InputOf<C>,
  options: CallOptions<C>,
  origin: Origin,
): Promise<OutputOf<C>> {
  return settle(sendNow(rt, contract, input, options, origin, Date.now()));
}

/**
 * `send`, answering with the output itself when it is there at once (a local handler with nothing to
 * wait for); a failure is a rejected promise, never a throw.
 */
function sendNow<C extends ActionContract>(
  rt: NodeRuntime,
  contract: C,
  input: InputOf<C>,
  options: CallOptions<C>,
  origin: Origin,
  now: number = Date.now(),
  parsedInput?: ParsedInput<C>,
): Promise<OutputOf<C>> | OutputOf<C> {
  const started = performance.now();
  const deadline = resolveDeadline({
    now,
    callTimeoutMs: options.timeoutMs,
    callDeadline: options.deadline,
    contractTimeoutMs: contract.timeoutMs,
    defaultTimeoutMs: rt.settings.callTimeoutMs,
    inherited: origin.deadline,
  });
  const local = localService(rt, contract.service);
  const span = rt.tracing.unrecorded(origin.trace) ?? recordCall(rt, contract, origin.trace, local !== undefined);
  let answer: Promise<OutputOf<C>> | OutputOf<C>;
  try {
    if (isPast(deadline, now)) {
      throw timeoutError(
        { service: contract.service, action: contract.action, timeoutMs: 0 },
        origin.inherited
          ? `The deadline of the request being handled has passed; ${contract.name} was not called`
          : `The deadline passed before ${contract.name} was called`,
      );
    }
    const body = local ? undefined : encode(input, contract.name, rt.codec);
    answer = rt.policies.callNow<InputOf<C>, OutputOf<C>>(
      new Attempts(rt, local, contract, input, parsedInput, body, deadline, origin, span, started, now, options),
    );
  } catch (error) {
    ended(rt, contract, span, started, error);
    return Promise.reject(error);
  }
  // Answered at once (a local handler with nothing to wait for): no promise here, no async frame.
  if (!isThenable(answer)) {
    ended(rt, contract, span, started, undefined);
    return answer;
  }
  return answer.then(
    (output) => {
      ended(rt, contract, span, started, undefined);
      return output;
    },
    (error: unknown) => {
      ended(rt, contract, span, started, error);
      throw error;
    },
  );
}

/** A call ended: the client histogram and the call's span. */
function ended(rt: NodeRuntime, contract: ActionContract, span: Span, started: number, failure: unknown): void {
  rt.metrics.observeClient(contract.name, outcomeOf(failure), (performance.now() - started) / 1000);
  Tracing.end(span, failure);
}

function recordCall(rt: NodeRuntime, contract: ActionContract, parent: Span, local: boolean): Span {
  return local
    ? rt.tracing.record(`call ${contract.name}`, SpanKind.INTERNAL, parent, {
        'rpc.system': 'chassis',
        'rpc.service': contract.service,
        'rpc.method': contract.action,
        'chassis.local': true,
      })
    : rt.tracing.record(`call ${contract.name}`, SpanKind.CLIENT, parent, {
        'rpc.system': 'chassis',
        'rpc.service': contract.service,
        'rpc.method': contract.action,
      });
}

/**
 * A call as the policies run it: what they read of it, and its attempts (`attempt`). One object a call,
 * where a closure over the call's state (with its context) inside an object literal were three.
 * `started`: the call's `performance.now()`.
 */
class Attempts<C extends ActionContract> implements GuardedCall<InputOf<C>, OutputOf<C>> {
  readonly target: string;
  readonly idempotent: boolean;
  readonly deadline: number;
  readonly input: InputOf<C>;
  readonly policies: Required<CallPolicies>;
  readonly fallback: Fallback<InputOf<C>, OutputOf<C>> | undefined;
  readonly now: number;

  private readonly rt: NodeRuntime;
  private readonly local: ServiceDefinition | undefined;
  private readonly contract: C;
  private readonly parsedInput: ParsedInput<C> | undefined;
  private readonly body: Uint8Array | undefined;
  private readonly origin: Origin;
  private readonly span: Span;
  private readonly started: number;

  constructor(
    rt: NodeRuntime,
    local: ServiceDefinition | undefined,
    contract: C,
    input: InputOf<C>,
    parsedInput: ParsedInput<C> | undefined,
    body: Uint8Array | undefined,
    deadline: number,
    origin: Origin,
    span: Span,
    started: number,
    now: number,
    options: CallOptions<C>,
  ) {
    this.target = contract.name;
    this.idempotent = contract.idempotent;
    this.deadline = deadline;
    this.input = input;
    this.policies = callPolicies(rt, contract, options);
    this.fallback = options.fallback;
    this.now = now;
    this.rt = rt;
    this.local = local;
    this.contract = contract;
    this.parsedInput = parsedInput;
    this.body = body;
    this.origin = origin;
    this.span = span;
    this.started = started;
  }

  /**
   * One attempt. One made in the call's synchronous start (given the call's `now`) starts when the call
   * did, on both clocks; a later one reads them. Only the first attempt takes the input as already
   * parsed: a retry gets a value of its own, as it would over the wire, not one an earlier attempt may
   * have changed.
   */
  attempt(attempt: number, now: number | undefined): Promise<OutputOf<C>> | OutputOf<C> {
    const { rt, local, contract, deadline, origin, span } = this;
    if (local === undefined)
      return sendOnce(rt, contract, this.body!, deadline, origin, span, attempt, now ?? Date.now());
    return now === undefined
      ? callLocal(
          rt,
          local,
          contract,
          this.input,
          undefined,
          deadline,
          origin,
          span,
          attempt,
          Date.now(),
          performance.now(),
        )
      : callLocal(
          rt,
          local,
          contract,
          this.input,
          attempt === 1 ? this.parsedInput : undefined,
          deadline,
          origin,
          span,
          attempt,
          now,
          this.started,
        );
  }
}

/** The policies of a call: the contract's over the node's, resolved once, unless the call overrides. */
function callPolicies(rt: NodeRuntime, contract: ActionContract, options: CallPolicies): Required<CallPolicies> {
  const { retry, breaker, bulkhead, cache } = options;
  if (retry !== undefined || breaker !== undefined || bulkhead !== undefined || cache !== undefined) {
    return rt.policies.resolveCall(contract.policies, { retry, breaker, bulkhead, cache });
  }
  let resolved = rt.contractPolicies.get(contract);
  if (!resolved) {
    resolved = rt.policies.resolveCall(contract.policies);
    rt.contractPolicies.set(contract, resolved);
  }
  return resolved;
}

/** One attempt at a call: one request on the wire, with whatever time is left. */
async function sendOnce<C extends ActionContract>(
  rt: NodeRuntime,
  contract: C,
  body: Uint8Array,
  deadline: number,
  origin: Origin,
  span: Span,
  attempt: number,
  now: number,
): Promise<OutputOf<C>> {
  const remainingMs = timeLeft(contract, deadline, attempt, now);
  const headers = headersFor(rt, origin, span);
  // The time left, not the deadline itself: the receiver counts it on its own clock, so clock skew
  // between the nodes does not move it.
  headers[Header.timeoutMs] = encodeTimeoutMs(remainingMs);
  if (attempt > 1) headers[Header.attempt] = String(attempt);
  if (origin.auth) headers[Header.auth] = origin.auth;
  const reply = await rt.transport.request(
    contract.service,
    contract.action,
    { headers, body },
    { timeoutMs: remainingMs },
  );
  const decoded = decodeBody(reply);
  if (reply.headers[Header.status] === 'error') throw answeredError(contract, decoded, remainingMs);
  return decoded as OutputOf<C>;
}

/**
 * The error a server answered with. A `TIMEOUT` of this action is this attempt's, whichever side saw the
 * deadline first: a server whose handler ended at the deadline answers `TIMEOUT` with nothing left
 * (`timeoutMs: 0`), and under load that answer can be read before the caller's own timer fires. Either
 * way the caller sees the same data — the time the attempt had — as every transport gives it.
 */
function answeredError(contract: ActionContract, decoded: unknown, remainingMs: number): ChassisError {
  const error = ChassisError.fromJSON(decoded);
  // A call the handler made that timed out keeps its own data: it is not this attempt's deadline.
  const about = error.data as { service?: unknown; action?: unknown } | undefined;
  if (error.code !== 'TIMEOUT' || about?.service !== contract.service || about?.action !== contract.action) {
    return error;
  }
  return timeoutError({ service: contract.service, action: contract.action, timeoutMs: remainingMs }, error.message);
}
