import type { ActionContract, OutputOf } from '../contracts.ts';
import { newId } from '../envelope.ts';
import { ChassisError, timeoutError, toChassisError } from '../errors.ts';
import type { Identity } from '../identity.ts';
import type { Span } from '../observability/tracing.ts';
import type { ServiceDefinition } from '../service.ts';
import { Due } from '../transports/shared/deadlines.ts';
import { endServing, isThenable, runAction, unknownAction } from './actions.ts';
import { timeLeft } from './deadline.ts';
import type { Origin } from './origin.ts';
import type { NodeRuntime } from './runtime.ts';

/**
 * The service this node runs, when calls to it may stay in the process: same validation, deadline,
 * identity, policies, metrics and spans as over the wire, without encoding, decoding or the broker.
 */
export function localService(rt: NodeRuntime, name: string): ServiceDefinition | undefined {
  if (!rt.settings.localCalls || rt.state !== 'running') return undefined;
  return rt.servingHere.get(name);
}

/**
 * Where what a locally called handler sends comes from. Its message id is made when first read (a
 * log line, a call or emit onwards, `ctx.messageId`): most local calls never read it, and a UUID per
 * call showed in their profile. A class with getters, so never spread it (`withAuth` copies one).
 */
class LocalOrigin implements Origin {
  private id: string | undefined;
  readonly auth: string | undefined;
  user?: Identity;
  readonly inherited = true;

  private readonly caller: Origin;
  readonly deadline: number;
  readonly trace: Span;

  constructor(caller: Origin, deadline: number, trace: Span) {
    this.caller = caller;
    this.deadline = deadline;
    this.trace = trace;
    this.auth = caller.auth;
  }

  get messageId(): string {
    this.id ??= newId();
    return this.id;
  }
  get correlationId(): string {
    return this.caller.correlationId ?? this.messageId;
  }
  get causationId(): string | undefined {
    return this.caller.inherited ? this.caller.messageId : undefined;
  }
}

/**
 * One attempt at a call served by this node's own instance of the service, at `now` and `started`
 * (`Date.now()` and `performance.now()`: the call's own readings when this attempt is made in its
 * synchronous start, so its server histogram counts the call's few µs of policies too). The handler runs under the
 * call's span (`span`): a local call has one span, not a client and a server one (see `send`).
 * `parsedInput`: the input as `parseInput` parsed it, when the caller had (see `runAction`).
 * A handler that answers at once is answered with its output itself, not a promise: the policies
 * `await` the attempt either way, and a promise here was one more allocation and hop per call.
 */
export function callLocal<C extends ActionContract>(
  rt: NodeRuntime,
  service: ServiceDefinition,
  contract: C,
  input: unknown,
  parsedInput: unknown,
  deadline: number,
  caller: Origin,
  span: Span,
  attempt: number,
  now: number,
  started: number,
): Promise<OutputOf<C>> | OutputOf<C> {
  let remainingMs: number;
  try {
    remainingMs = timeLeft(contract, deadline, attempt, now);
  } catch (error) {
    return Promise.reject(error);
  }
  const handler = service.actions.get(contract.action);
  if (!handler) return Promise.reject(unknownAction(service, contract.action));
  rt.metrics.handling.rpc++;
  const origin = new LocalOrigin(caller, deadline, span);
  let work: unknown;
  try {
    work = runAction(rt, service, handler, input, origin, span, now, parsedInput);
  } catch (error) {
    return Promise.reject(failedLocally(rt, service, contract.action, started, error));
  }
  if (!isThenable(work)) {
    // Answered at once (a handler with nothing to wait for): nothing to race against the deadline,
    // which `runAction` checked after it ran.
    endServing(rt, service, contract.action, undefined, started, undefined);
    return work as OutputOf<C>;
  }
  rt.localCalls.enter();
  // One promise for the caller, settled by the handler or at the deadline, whichever comes first: the
  // caller waits no longer than over the wire would, and the handler, as there, runs on. (Not
  // Promise.race: that costs three more promises on the path every local call takes.)
  return new Promise<OutputOf<C>>((resolve, reject) => {
    const waiting = new WaitingCaller(rt, service, contract, deadline, remainingMs, started, resolve, reject);
    rt.localDeadlines.add(waiting);
    work.then(
      (output) => {
        rt.localCalls.leave();
        waiting.answer(output as OutputOf<C>);
      },
      (error: unknown) => {
        rt.localCalls.leave();
        waiting.fail(error);
      },
    );
  });
}

/** A local call that failed: counted as served, and the error as the wire would carry it. */
function failedLocally(
  rt: NodeRuntime,
  service: ServiceDefinition,
  action: string,
  started: number,
  error: unknown,
): ChassisError {
  endServing(rt, service, action, undefined, started, error);
  return ChassisError.fromJSON(toChassisError(error).toJSON());
}

/** A local call's caller, answered by the handler or with TIMEOUT at the deadline, whichever comes first. */
class WaitingCaller<C extends ActionContract> extends Due {
  private answered = false;

  private readonly rt: NodeRuntime;
  private readonly service: ServiceDefinition;
  private readonly contract: C;
  readonly deadline: number;
  private readonly timeoutMs: number;
  private readonly started: number;
  private readonly resolve: (output: OutputOf<C>) => void;
  private readonly reject: (error: unknown) => void;

  constructor(
    rt: NodeRuntime,
    service: ServiceDefinition,
    contract: C,
    deadline: number,
    timeoutMs: number,
    started: number,
    resolve: (output: OutputOf<C>) => void,
    reject: (error: unknown) => void,
  ) {
    super();
    this.rt = rt;
    this.service = service;
    this.contract = contract;
    this.deadline = deadline;
    this.timeoutMs = timeoutMs;
    this.started = started;
    this.resolve = resolve;
    this.reject = reject;
  }

  answer(output: OutputOf<C>): void {
    this.rt.localDeadlines.delete(this);
    if (this.answered) return;
    this.answered = true;
    endServing(this.rt, this.service, this.contract.action, undefined, this.started, undefined);
    this.resolve(output);
  }

  fail(error: unknown): void {
    this.rt.localDeadlines.delete(this);
    if (this.answered) return;
    this.answered = true;
    endServing(this.rt, this.service, this.contract.action, undefined, this.started, error);
    // What the caller gets is what the wire would carry: the error's serialized form.
    this.reject(ChassisError.fromJSON(toChassisError(error).toJSON()));
  }

  expire(): void {
    if (this.answered) return;
    this.answered = true;
    const { service, action } = this.contract;
    const timeout = timeoutError({ service, action, timeoutMs: this.timeoutMs });
    endServing(this.rt, this.service, action, undefined, this.started, timeout);
    this.reject(ChassisError.fromJSON(timeout.toJSON()));
  }
}
