import { randomFillSync } from 'node:crypto';
import { Packr } from 'msgpackr';
import { ChassisError } from './errors.ts';
import type { WireMessage } from './transports/transport.ts';

/**
 * The envelope: the header names a message may carry, and the codecs for its body.
 * Header names are lower-case so they read the same in NATS headers and AMQP properties. A header whose
 * default holds is left out: no `correlation-id` means the message's own `id`, no `content-type` means
 * JSON, no `attempt` means the first, no `status` means success; RPC requests carry no `type`, since the
 * subject or routing key names the action.
 */
export const Header = {
  id: 'id',
  type: 'type',
  correlationId: 'correlation-id',
  causationId: 'causation-id',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  /**
   * Requests: the milliseconds the caller still waits, counted by the receiver from when it got the
   * request (as gRPC's `grpc-timeout`), so the two clocks need not agree.
   */
  timeoutMs: 'timeout-ms',
  /**
   * Events that set one: absolute epoch ms after which the event is stale. Requests from nodes older than
   * `timeout-ms` carry their deadline here too, and are read as before.
   */
  deadline: 'deadline',
  /** The caller's signed identity token; services verify it, the transport is not trusted. */
  auth: 'auth',
  contentType: 'content-type',
  /** Omitted on a first attempt. */
  attempt: 'attempt',
  /** On replies: `error` when the body is an error; absent on success. */
  status: 'status',
} as const;

export const ContentType = {
  json: 'application/json',
  msgpack: 'application/msgpack',
} as const;

export type Serializer = keyof typeof ContentType;

export interface Codec {
  readonly contentType: string;
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

// Fatal: a body that is not valid UTF-8 is refused, not silently patched with U+FFFD.
const decoder = new TextDecoder('utf-8', { fatal: true });

const json: Codec = {
  contentType: ContentType.json,
  // Buffer.from rather than TextEncoder: it draws small buffers from a pool, and encoding is on every message.
  encode: (value) => Buffer.from(value === undefined ? 'null' : JSON.stringify(value), 'utf8'),
  decode: (bytes) => JSON.parse(decoder.decode(bytes)),
};

// useRecords: false keeps plain maps on the wire, so any MessagePack reader in any language can decode it.
const packr = new Packr({ useRecords: false });
const msgpack: Codec = {
  contentType: ContentType.msgpack,
  encode: (value) => packr.pack(value),
  decode: (bytes) => packr.unpack(bytes),
};

export function codecFor(serializer: Serializer): Codec {
  return serializer === 'msgpack' ? msgpack : json;
}

/** Picks the codec a received message says it was written with. */
export function codecOf(message: WireMessage): Codec {
  const type = message.headers[Header.contentType] ?? ContentType.json;
  if (type === ContentType.json) return json;
  if (type === ContentType.msgpack) return msgpack;
  throw new ChassisError(
    'BAD_MESSAGE',
    `Unsupported content-type "${type}"; use ${ContentType.json} or ${ContentType.msgpack}`,
  );
}

/** Decodes a message body, turning any failure into a `BAD_MESSAGE` error. */
export function decodeBody(message: WireMessage): unknown {
  const codec = codecOf(message);
  try {
    return codec.decode(message.body);
  } catch (error) {
    throw new ChassisError('BAD_MESSAGE', `The message body is not valid ${codec.contentType}`, { cause: error });
  }
}

/** Random bytes for 128 ids at a time, as Node's own `randomUUID` keeps them. */
const idEntropy = Buffer.allocUnsafeSlow(16 * 128);
let idEntropyAt = idEntropy.length;
const idText = Buffer.allocUnsafeSlow(36);
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');

/**
 * A random (version 4) UUID, as `crypto.randomUUID()` makes one but written into a buffer and read out
 * as one flat string: Node's joins 20 pieces, and every request and event takes one, so that was half a
 * kilobyte of garbage and a few percent of a NATS request's CPU.
 */
export function newId(): string {
  if (idEntropyAt === idEntropy.length) {
    randomFillSync(idEntropy);
    idEntropyAt = 0;
  }
  const start = idEntropyAt;
  idEntropyAt += 16;
  let at = 0;
  for (let i = 0; i < 16; i++) {
    let byte = idEntropy[start + i]!;
    if (i === 6)
      byte = (byte & 0x0f) | 0x40; // version 4
    else if (i === 8) byte = (byte & 0x3f) | 0x80; // RFC 4122 variant
    idText[at++] = HEX_DIGITS[byte >> 4]!;
    idText[at++] = HEX_DIGITS[byte & 15]!;
    if (i === 3 || i === 5 || i === 7 || i === 9) idText[at++] = 45; // '-'
  }
  return idText.toString('latin1', 0, 36);
}

/** Reads the deadline header; `undefined` when absent or unreadable. */
export function deadlineOf(message: WireMessage): number | undefined {
  const raw = message.headers[Header.deadline];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : undefined;
}

/** Reads the timeout-ms header; `undefined` when absent or not a number of milliseconds (0 or more). */
export function timeoutMsOf(message: WireMessage): number | undefined {
  const raw = message.headers[Header.timeoutMs];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * The deadline of a received request on this node's clock: `receivedAt` (when this node took it off the
 * wire) plus the time the caller said it still waits. The caller's clock never enters, so a receiver whose
 * clock runs ahead does not refuse everything as late, and one that runs behind does not work on after the
 * caller has given up. Only a request from a node that predates `timeout-ms` falls back to its absolute
 * `deadline`. `undefined` when it carries neither.
 */
export function requestDeadlineOf(message: WireMessage, receivedAt: number): number | undefined {
  const timeoutMs = timeoutMsOf(message);
  return timeoutMs === undefined ? deadlineOf(message) : receivedAt + timeoutMs;
}

/** The timeout-ms header value for a request whose caller waits `remainingMs` more: whole ms, at least 0. */
export function encodeTimeoutMs(remainingMs: number): string {
  return String(Math.max(0, Math.ceil(remainingMs)));
}
