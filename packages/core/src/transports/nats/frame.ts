import { Header } from '../../envelope.ts';
import { checkSendable, headerName, isHidden, timeoutLeft } from './header-rules.ts';

/**
 * The envelope of an RPC request or reply at the front of its NATS body, instead of in NATS headers.
 *
 * A message with headers is an `HPUB`/`HMSG` to nats.js, and each one costs it a header block to write,
 * a second buffer to copy, and on the other side a header map to find and cut out: measured on a call
 * made one at a time (the bench's `rpc-nats` at concurrency 1), that was most of what an RPC costs
 * Chassis beyond what nats.js itself costs. A frame goes as a plain `PUB` of one buffer.
 *
 * Layout: `0xC1`, the frame's version (1), the envelope's length in bytes (16 bits, big-endian), the
 * envelope as UTF-8 text — `<name>:<value>\n` for each header, names and values as NATS headers allow
 * them — then the body. `0xC1` begins no body Chassis writes: it is never the first byte of UTF-8 text
 * (JSON) and never used by MessagePack, so a receiver tells a frame from a plain body by that byte alone,
 * and still reads the header form (from nodes that predate frames, or `envelope: 'headers'`).
 */
export const FRAME_MAGIC = 0xc1;
export const FRAME_VERSION = 1;
/** Magic, version, envelope length. */
const PREFIX = 4;
const MAX_ENVELOPE = 0xffff;

/** A framed message as the runtime sees it. */
export interface Unframed {
  headers: Record<string, string>;
  body: Uint8Array;
}

/** Whether a message body (with no NATS header block) carries its envelope in a frame. */
export function isFramed(data: Uint8Array): boolean {
  return data.length > 0 && data[0] === FRAME_MAGIC;
}

/**
 * The envelope and the body in one buffer, checked as NATS headers would be (`BAD_MESSAGE` naming the
 * header). The body itself when there is no header to carry (a JSON reply): a plain body is a message
 * with no envelope in either form. Undefined when the envelope is too long for a frame (over 64 KiB):
 * the message then goes in the header form.
 */
export function frame(headers: Record<string, string>, body: Uint8Array): Uint8Array | undefined {
  let text = '';
  for (const key in headers) {
    const value = headers[key]!;
    checkSendable(key, value);
    text += `${key}:${value.trim()}\n`;
  }
  if (text === '') return body;
  const length = Buffer.byteLength(text, 'utf8');
  if (length > MAX_ENVELOPE) return undefined;
  // One buffer, from Node's pool when small: nats.js copies it once more, into its write.
  const out = Buffer.allocUnsafe(PREFIX + length + body.length);
  out[0] = FRAME_MAGIC;
  out[1] = FRAME_VERSION;
  out[2] = length >> 8;
  out[3] = length & 0xff;
  out.write(text, PREFIX, length, 'utf8');
  out.set(body, PREFIX + length);
  return out;
}

const decoder = new TextDecoder();

/**
 * The envelope and body of a framed message; undefined for one this node cannot read (a later version,
 * a truncated envelope): it is then taken as a plain body, which fails to decode as any bad body does
 * (`BAD_MESSAGE`, and dead-lettered on a server).
 */
export function unframe(data: Uint8Array): Unframed | undefined {
  if (data.length < PREFIX || data[0] !== FRAME_MAGIC || data[1] !== FRAME_VERSION) return undefined;
  const end = PREFIX + ((data[2]! << 8) | data[3]!);
  if (end > data.length) return undefined;
  return { headers: parseEnvelope(decoder.decode(data.subarray(PREFIX, end))), body: data.subarray(end) };
}

/** `<name>:<value>\n` lines; the first value of a name counts, as in a NATS header block. */
function parseEnvelope(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const colon = text.indexOf(':', start);
    if (colon !== -1 && colon < end) {
      const key = headerName(text, start, colon);
      if (!isHidden(key) && !Object.hasOwn(headers, key)) headers[key] = text.slice(colon + 1, end);
    }
    start = end + 1;
  }
  return headers;
}

/**
 * A framed request handed back after it waited `waitedMs` here: its `timeout-ms` reduced by that wait;
 * `null` when nothing is left of it. One without `timeout-ms`, or a frame this node cannot read, goes
 * back as it came (as `handedBackHeaders` does for the header form).
 */
export function handedBackFrame(data: Uint8Array, waitedMs: number): Uint8Array | null {
  const unframed = unframe(data);
  if (!unframed) return data;
  const left = timeoutLeft(unframed.headers[Header.timeoutMs], waitedMs);
  if (left === undefined) return data;
  if (left === null) return null;
  unframed.headers[Header.timeoutMs] = left;
  return frame(unframed.headers, unframed.body) ?? data;
}
