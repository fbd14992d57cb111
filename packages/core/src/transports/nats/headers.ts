import { headers as createHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { encodeTimeoutMs, Header } from '../../envelope.ts';
import { ChassisError } from '../../errors.ts';
import { messageOf } from '../shared/errors.ts';

/** Transport-private headers: never shown to the runtime. */
export const CLAIM_HEADER = 'chassis-claim';
export const MSG_ID_HEADER = 'Nats-Msg-Id';
const HIDDEN_HEADERS = new Set([CLAIM_HEADER, MSG_ID_HEADER.toLowerCase()]);

/** NATS headers, or none at all for an empty set: a message with no header block is cheaper to send and read. */
export function toNatsHeaders(headers: Record<string, string>): MsgHdrs | undefined {
  let out: MsgHdrs | undefined;
  for (const key in headers) {
    const value = headers[key]!;
    out ??= createHeaders();
    try {
      out.set(key, value);
    } catch (error) {
      throw new ChassisError('BAD_MESSAGE', `Header "${key}" cannot be sent over NATS: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }
  return out;
}

/** Messages from outside (`nats pub` without headers) have none: they read as `{}`. */
export function fromNatsHeaders(headers: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const [key, values] of headers) {
    if (HIDDEN_HEADERS.has(key.toLowerCase())) continue;
    const value = values[0];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * The headers of a request handed back after it waited `waitedMs` here: its timeout-ms reduced by that
 * wait; `null` when nothing is left of it. A request without timeout-ms (from an older node, with an
 * absolute deadline, or none) goes back as it came.
 */
export function handedBackHeaders(headers: MsgHdrs | undefined, waitedMs: number): MsgHdrs | undefined | null {
  const raw = headers?.get(Header.timeoutMs);
  if (!headers || !raw) return headers;
  const timeoutMs = Number(raw);
  if (!Number.isFinite(timeoutMs)) return headers;
  const left = timeoutMs - waitedMs;
  if (left <= 0) return null;
  const out = createHeaders();
  for (const [key, values] of headers) {
    if (key.toLowerCase() === Header.timeoutMs) continue;
    for (const value of values) out.append(key, value);
  }
  out.set(Header.timeoutMs, encodeTimeoutMs(left));
  return out;
}
