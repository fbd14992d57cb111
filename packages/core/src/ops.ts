import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { codecFor, decodeBody, encodeTimeoutMs, Header, newId } from './envelope.ts';
import { ChassisError } from './errors.ts';
import type { Transport } from './transports/transport.ts';

/**
 * The ops API: what an operator (the `chassis` command, a dashboard) asks a running node — what it runs,
 * its health, its breakers and backlogs, its dead letters, and what its extensions add (outbox, sagas).
 *
 * Every node serves it on the transport under a name of its own (`opsServiceName(nodeId)`), so a request
 * reaches that one node wherever the broker reaches it, and on its ops HTTP port under `/ops/…`. Both
 * need an admin-role token or the ops secret: nothing anonymous lists, replays or purges anything.
 */

/** One action of the ops API: its input schema and what it does. Extensions add theirs (`NodeExtension.ops`). */
export interface OpsAction<I extends z.ZodType = z.ZodType> {
  readonly description: string;
  /** Checked before `run`; over HTTP GET the fields arrive as strings, so numbers should be `z.coerce`. */
  readonly input: I;
  /** Changes something (replay, purge, retry, abort): over HTTP only by POST. */
  readonly mutates?: boolean;
  // A method, so actions of different inputs fit in one record (parameters compare bivariantly).
  run(input: z.output<I>): Promise<unknown> | unknown;
}

/** Makes an ops action, typing `run` by its input schema. */
export function opsAction<I extends z.ZodType>(action: OpsAction<I>): OpsAction<I> {
  return action;
}

/** What opens the ops API: an access token with the admin role, or the node's ops secret. */
export interface OpsCredentials {
  /** A token the node's identity verifier accepts (`CHASSIS_JWT_SECRET` / `CHASSIS_JWKS_URL`), with the admin role. */
  token?: string;
  /** The node's `CHASSIS_OPS_SECRET`. */
  secret?: string;
}

/** The request header that carries the ops secret on the transport (the token rides in `auth`). */
export const OPS_SECRET_HEADER = 'ops-secret';
/** …and over HTTP, beside `Authorization: Bearer <token>`. */
export const OPS_SECRET_HTTP_HEADER = 'x-chassis-ops-secret';

/** Action names: dot-separated lower-case words (`dlq.replay`); the dots become `_` on the wire. */
export const OPS_ACTION_NAME = /^[a-z][a-z0-9]*(\.[a-z][a-z0-9]*)*$/;

/** An action's name as the transport carries it: one subject token / routing-key word. */
export function opsWireName(action: string): string {
  return action.replaceAll('.', '_');
}

/**
 * The transport service name a node's ops API is served under: `chassis-ops--<node id>`, the id kept
 * where it is a safe token and replaced (plus a hash, so two ids never meet) where it is not — a host
 * name with dots, say.
 */
export function opsServiceName(nodeId: string): string {
  const safe = nodeId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 100);
  if (safe === nodeId) return `chassis-ops--${nodeId}`;
  return `chassis-ops--${safe}-${createHash('sha256').update(nodeId).digest('hex').slice(0, 8)}`;
}

export interface OpsCallOptions extends OpsCredentials {
  /** How long to wait for the answer. Default 10 000 ms (a replay of many letters may need more). */
  timeoutMs?: number;
}

const json = codecFor('json');

/** A caller's action name, refused before anything is sent when it cannot be one. */
function checkActionName(action: string): void {
  if (!OPS_ACTION_NAME.test(action)) {
    throw new ChassisError('VALIDATION', `"${action}" is not an ops action name (e.g. "services", "dlq.show")`);
  }
}

/**
 * Calls an ops action of one node through the transport — what the `chassis` command does once it has
 * joined the broker (the node ids come from `node.registry.list()`). Resolves with the action's output;
 * rejects with the `ChassisError` the node answered (`UNAUTHENTICATED`, `FORBIDDEN`, `VALIDATION`, …),
 * or `NO_SERVICE` / `TIMEOUT` when the node is not there.
 */
export async function callOps(
  transport: Transport,
  nodeId: string,
  action: string,
  input: unknown = {},
  options: OpsCallOptions = {},
): Promise<unknown> {
  checkActionName(action);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const headers: Record<string, string> = {
    [Header.id]: newId(),
    [Header.contentType]: json.contentType,
    [Header.timeoutMs]: encodeTimeoutMs(timeoutMs),
  };
  if (options.token !== undefined) headers[Header.auth] = options.token;
  if (options.secret !== undefined) headers[OPS_SECRET_HEADER] = options.secret;
  const reply = await transport.request(
    opsServiceName(nodeId),
    opsWireName(action),
    { headers, body: json.encode(input) },
    { timeoutMs },
  );
  const decoded = decodeBody(reply);
  if (reply.headers[Header.status] === 'error') throw ChassisError.fromJSON(decoded);
  return decoded;
}

/**
 * Calls an ops action over a node's ops HTTP port (`http://127.0.0.1:9400`) — for a node no broker
 * reaches (the memory transport). Always a POST with a JSON body, so actions that change things work too;
 * resolves with the output, rejects with the `ChassisError` of the error body (or `UNAVAILABLE` when the
 * port does not answer).
 */
export async function callOpsHttp(
  baseUrl: string,
  action: string,
  input: unknown = {},
  options: OpsCallOptions = {},
): Promise<unknown> {
  checkActionName(action);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.secret !== undefined) headers[OPS_SECRET_HTTP_HEADER] = options.secret;
  const url = `${baseUrl.replace(/\/+$/, '')}/ops/${action.replaceAll('.', '/')}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify(input),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (error) {
    const timedOut = error instanceof Error && error.name === 'TimeoutError';
    throw new ChassisError(
      timedOut ? 'TIMEOUT' : 'UNAVAILABLE',
      timedOut
        ? `No answer from ${url} in time`
        : `Cannot reach the ops port at ${baseUrl}: is the node running, with OPS_PORT?`,
      { cause: error },
    );
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    throw new ChassisError('BAD_MESSAGE', `${url} answered ${response.status} with a body that is not JSON`);
  }
  if (response.ok) return body;
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  throw new ChassisError(
    typeof error?.code === 'string' ? error.code : 'INTERNAL',
    typeof error?.message === 'string' ? error.message : `${url} answered ${response.status}`,
    { status: response.status, data: error?.details },
  );
}
