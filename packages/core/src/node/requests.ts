import { type Codec, ContentType, codecOf, decodeBody, Header } from '../envelope.ts';
import type { ChassisError } from '../errors.ts';
import { toChassisError } from '../errors.ts';
import type { Span } from '../observability/tracing.ts';
import type { ServiceDefinition } from '../service.ts';
import { type RpcRequest, rpcQueueName, type WireMessage } from '../transports/transport.ts';
import { endServing, runAction, startServing, unknownAction } from './actions.ts';
import { requestDeadline } from './deadline.ts';
import { inboundOrigin } from './origin.ts';
import { encode } from './outgoing.ts';
import type { NodeRuntime } from './runtime.ts';

/** What a served request answered, with the error for metrics and spans when it failed. */
interface Answer {
  message: WireMessage;
  error?: ChassisError;
}

/** Serves one request off the wire with its span, metrics and in-flight count around it. */
export async function serveRequest(
  rt: NodeRuntime,
  service: ServiceDefinition,
  request: RpcRequest,
): Promise<WireMessage> {
  const started = performance.now();
  // Only declared actions become label values: garbage names must not grow the metric's cardinality.
  const action = service.actions.has(request.action) ? request.action : '(unknown)';
  const span = startServing(rt, service, action, rt.tracing.extract(request.message.headers));
  let failure: unknown;
  try {
    const answer = await answerRequest(rt, service, request, span);
    failure = answer.error;
    return answer.message;
  } catch (error) {
    failure = error;
    throw error;
  } finally {
    endServing(rt, service, action, span, started, failure);
  }
}

/** Decodes a request, runs its action by its deadline, and encodes the reply or the error. */
async function answerRequest(
  rt: NodeRuntime,
  service: ServiceDefinition,
  { action, message, receivedAt = Date.now() }: RpcRequest,
  span: Span,
): Promise<Answer> {
  let codec = rt.codec;
  let input: unknown;
  try {
    codec = codecOf(message);
    input = decodeBody(message);
  } catch (error) {
    const reason = toChassisError(error);
    const queue = rpcQueueName(service.name);
    rt.log.warn(
      { service: service.name, action, reason: reason.message },
      `dead-lettered an unreadable request on ${queue}`,
    );
    rt.metrics.deadLetters.inc({ queue });
    await rt.transport
      .deadLetter(queue, message, reason.message)
      .catch((deadLetterError) => rt.log.error({ err: deadLetterError }, 'could not dead-letter a request'));
    return failed(reason, codec);
  }

  const handler = service.actions.get(action);
  if (!handler) return failed(unknownAction(service, action), codec);
  const deadline = requestDeadline(message, receivedAt, handler.contract.timeoutMs ?? rt.settings.callTimeoutMs);
  try {
    const output = await runAction(rt, service, handler, input, inboundOrigin(message, deadline, span), span);
    return {
      message: { headers: replyHeaders(codec, false), body: encode(output, `${service.name}.${action}`, codec) },
    };
  } catch (error) {
    return failed(toChassisError(error), codec);
  }
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

function failed(error: ChassisError, codec: Codec): Answer {
  return { message: { headers: replyHeaders(codec, true), body: codec.encode(error.toJSON()) }, error };
}
