import { type Codec, ContentType, codecOf, decodeBody, Header } from '../envelope.ts';
import type { ChassisError } from '../errors.ts';
import { toChassisError } from '../errors.ts';
import type { Span } from '../observability/tracing.ts';
import type { ServiceDefinition } from '../service.ts';
import { type RpcReply, type RpcRequest, rpcQueueName, type WireMessage } from '../transports/transport.ts';
import { endServing, isThenable, runAction, startServing, unknownAction } from './actions.ts';
import { requestDeadline } from './deadline.ts';
import { inboundOrigin } from './origin.ts';
import { encode } from './outgoing.ts';
import type { NodeRuntime } from './runtime.ts';

/**
 * Serves one request off the wire with its span, metrics and in-flight count around it: decodes it, runs
 * its action by its deadline, and encodes the reply or the error. A handler that answers at once is
 * answered with the reply itself, not a promise: the transport can send it in the same turn, with no turn
 * of the microtask queue between the request and its reply. The span and the metrics end in the reply's
 * `sent`, which the transport calls once the reply is on its way, so the caller does not wait for them.
 */
export function serveRequest(
  rt: NodeRuntime,
  service: ServiceDefinition,
  { action, message, receivedAt = Date.now() }: RpcRequest,
): Served | Promise<Served> {
  const started = performance.now();
  // Only declared actions become label values: garbage names must not grow the metric's cardinality.
  const label = service.actions.has(action) ? action : '(unknown)';
  const span = startServing(rt, service, label, rt.tracing.extract(message.headers));
  let codec = rt.codec;
  let output: unknown;
  try {
    let input: unknown;
    try {
      codec = codecOf(message);
      input = decodeBody(message);
    } catch (error) {
      const reason = toChassisError(error);
      return deadLetterRequest(rt, service, action, message, reason).then(
        () => failed(rt, service, label, span, started, reason, codec),
        (unexpected: unknown) => ended(rt, service, label, span, started, unexpected),
      );
    }
    const handler = service.actions.get(action);
    if (!handler) return failed(rt, service, label, span, started, unknownAction(service, action), codec);
    const deadline = requestDeadline(message, receivedAt, handler.contract.timeoutMs ?? rt.settings.callTimeoutMs);
    const origin = inboundOrigin(message, deadline, span);
    try {
      output = runAction(rt, service, handler, input, origin, span);
    } catch (error) {
      return failed(rt, service, label, span, started, toChassisError(error), codec);
    }
  } catch (error) {
    return ended(rt, service, label, span, started, error);
  }
  if (!isThenable(output)) return answered(rt, service, label, span, started, action, output, codec);
  return Promise.resolve(output).then(
    (value) => answered(rt, service, label, span, started, action, value, codec),
    (error: unknown) => failed(rt, service, label, span, started, toChassisError(error), codec),
  );
}

/**
 * A reply, and the serving's end — the histogram, the span, the in-flight count — for when it is sent.
 * One object for both: the reply's `sent` is a method, not a closure made per request.
 */
export class Served implements RpcReply {
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
  #rt: NodeRuntime | undefined;
  readonly #service: ServiceDefinition;
  readonly #label: string;
  readonly #span: Span;
  readonly #started: number;
  readonly #failure: unknown;

  constructor(
    rt: NodeRuntime,
    service: ServiceDefinition,
    label: string,
    span: Span,
    started: number,
    failure: unknown,
    headers: Record<string, string>,
    body: Uint8Array,
  ) {
    this.headers = headers;
    this.body = body;
    this.#rt = rt;
    this.#service = service;
    this.#label = label;
    this.#span = span;
    this.#started = started;
    this.#failure = failure;
  }

  /** Ends the serving, once: the transport calls it when the reply has gone (or was dropped). */
  sent(): void {
    const rt = this.#rt;
    if (!rt) return;
    this.#rt = undefined;
    endServing(rt, this.#service, this.#label, this.#span, this.#started, this.#failure);
  }
}

function answered(
  rt: NodeRuntime,
  service: ServiceDefinition,
  label: string,
  span: Span,
  started: number,
  action: string,
  output: unknown,
  codec: Codec,
): Served {
  let body: Uint8Array;
  try {
    body = encode(output, `${service.name}.${action}`, codec);
  } catch (error) {
    return failed(rt, service, label, span, started, toChassisError(error), codec);
  }
  return new Served(rt, service, label, span, started, undefined, replyHeaders(codec, false), body);
}

function failed(
  rt: NodeRuntime,
  service: ServiceDefinition,
  label: string,
  span: Span,
  started: number,
  error: ChassisError,
  codec: Codec,
): Served {
  let body: Uint8Array;
  try {
    body = codec.encode(error.toJSON());
  } catch (unexpected) {
    return ended(rt, service, label, span, started, unexpected);
  }
  return new Served(rt, service, label, span, started, error, replyHeaders(codec, true), body);
}

/** Something no reply can carry: the serving ends here, and the transport reports the error. */
function ended(
  rt: NodeRuntime,
  service: ServiceDefinition,
  label: string,
  span: Span,
  started: number,
  error: unknown,
): never {
  endServing(rt, service, label, span, started, error);
  throw error;
}

/** An unreadable request goes to its queue's dead letters; its caller gets the error. */
async function deadLetterRequest(
  rt: NodeRuntime,
  service: ServiceDefinition,
  action: string,
  message: WireMessage,
  reason: ChassisError,
): Promise<void> {
  const queue = rpcQueueName(service.name);
  rt.log.warn(
    { service: service.name, action, reason: reason.message },
    `dead-lettered an unreadable request on ${queue}`,
  );
  rt.metrics.deadLetters.inc({ queue });
  await rt.transport
    .deadLetter(queue, message, reason.message)
    .catch((deadLetterError) => rt.log.error({ err: deadLetterError }, 'could not dead-letter a request'));
}

/**
 * A reply says only what is not implied: an error says so (`status: error`), and a body that is not
 * JSON says what it is. A plain JSON answer travels with no header at all.
 */
function replyHeaders(codec: Codec, error: boolean): Record<string, string> {
  const headers: Record<string, string> = {};
  if (error) headers[Header.status] = 'error';
  if (codec.contentType !== ContentType.json) headers[Header.contentType] = codec.contentType;
  return headers;
}
