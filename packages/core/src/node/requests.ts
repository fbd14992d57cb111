import { type Codec, ContentType, codecOf, decodeBody, Header } from '../envelope.ts';
import type { ChassisError } from '../errors.ts';
import { toChassisError } from '../errors.ts';
import type { ServiceDefinition } from '../service.ts';
import { type RpcRequest, rpcQueueName, type WireMessage } from '../transports/transport.ts';
import { endServing, runAction, startServing, unknownAction } from './actions.ts';
import { requestDeadline } from './deadline.ts';
import { inboundOrigin } from './origin.ts';
import { encode } from './outgoing.ts';
import type { NodeRuntime } from './runtime.ts';

/**
 * Serves one request off the wire with its span, metrics and in-flight count around it: decodes it, runs
 * its action by its deadline, and encodes the reply or the error. One async function for the lot: each
 * level of promises between the transport and the handler cost a promise and turns of the microtask
 * queue on every request, before its reply could leave.
 */
export async function serveRequest(
  rt: NodeRuntime,
  service: ServiceDefinition,
  { action, message, receivedAt = Date.now() }: RpcRequest,
): Promise<WireMessage> {
  const started = performance.now();
  // Only declared actions become label values: garbage names must not grow the metric's cardinality.
  const label = service.actions.has(action) ? action : '(unknown)';
  const span = startServing(rt, service, label, rt.tracing.extract(message.headers));
  let failure: unknown;
  try {
    let codec = rt.codec;
    let input: unknown;
    try {
      codec = codecOf(message);
      input = decodeBody(message);
    } catch (error) {
      const reason = toChassisError(error);
      failure = reason;
      await deadLetterRequest(rt, service, action, message, reason);
      return failed(reason, codec);
    }
    const handler = service.actions.get(action);
    if (!handler) {
      const unknown = unknownAction(service, action);
      failure = unknown;
      return failed(unknown, codec);
    }
    const deadline = requestDeadline(message, receivedAt, handler.contract.timeoutMs ?? rt.settings.callTimeoutMs);
    try {
      const output = await runAction(rt, service, handler, input, inboundOrigin(message, deadline, span), span);
      return { headers: replyHeaders(codec, false), body: encode(output, `${service.name}.${action}`, codec) };
    } catch (error) {
      const chassisError = toChassisError(error);
      failure = chassisError;
      return failed(chassisError, codec);
    }
  } catch (error) {
    failure = error;
    throw error;
  } finally {
    endServing(rt, service, label, span, started, failure);
  }
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

function failed(error: ChassisError, codec: Codec): WireMessage {
  return { headers: replyHeaders(codec, true), body: codec.encode(error.toJSON()) };
}
