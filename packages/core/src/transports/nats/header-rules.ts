import { encodeTimeoutMs, Header } from '../../envelope.ts';
import { ChassisError } from '../../errors.ts';

/**
 * What a header may be on NATS, and the names Chassis gives a meaning: shared by the header block
 * (`headers.ts`) and the frame (`frame.ts`), so that an envelope reads the same in either form.
 */

/** Transport-private headers: never shown to the runtime. */
export const CLAIM_HEADER = 'chassis-claim';
export const MSG_ID_HEADER = 'Nats-Msg-Id';
export const HIDDEN_HEADERS = new Set([CLAIM_HEADER, MSG_ID_HEADER.toLowerCase()]);

/** A `BAD_MESSAGE` naming the header, for one that cannot go over NATS in either form. */
export function checkSendable(key: string, value: string): void {
  const problem = headerProblem(key, value);
  if (problem) throw new ChassisError('BAD_MESSAGE', `Header "${key}" cannot be sent over NATS: ${problem}`);
}

/** What nats.js refuses in a header: a name outside printable ASCII or with a colon, a value with a line break. */
function headerProblem(key: string, value: string): string | undefined {
  if (key.length === 0) return 'a header name cannot be empty';
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c === 58 || c < 33 || c > 126) return `'${key[i]}' is not a valid character in a header name`;
  }
  if (value.includes('\r') || value.includes('\n')) return 'values cannot contain \\r or \\n';
  return undefined;
}

/**
 * The envelope's header names by length: a name read off the wire is looked up here and the constant
 * used as the property's key. A key cut out of the text would be hashed and interned as the object took
 * it, for every header of every message, and was most of the cost of reading the headers.
 */
const KNOWN_NAMES: ReadonlyMap<number, readonly string[]> = (() => {
  const byLength = new Map<number, string[]>();
  for (const name of Object.values(Header)) {
    const names = byLength.get(name.length) ?? [];
    names.push(name);
    byLength.set(name.length, names);
  }
  return byLength;
})();

export function headerName(text: string, start: number, colon: number): string {
  const known = KNOWN_NAMES.get(colon - start);
  if (known) {
    for (const name of known) if (text.startsWith(name, start)) return name;
  }
  return text.slice(start, colon);
}

/** A transport-private header, in any case; lower-cased only when its length could make it one. */
export function isHidden(key: string): boolean {
  return (
    (key.length === CLAIM_HEADER.length || key.length === MSG_ID_HEADER.length) && HIDDEN_HEADERS.has(key.toLowerCase())
  );
}

/**
 * The `timeout-ms` of a request handed back after it waited `waitedMs` here: the time left, encoded;
 * `null` when nothing is left of it; undefined when it has none (or none readable), so it goes back as it came.
 */
export function timeoutLeft(raw: string | undefined, waitedMs: number): string | null | undefined {
  if (!raw) return undefined;
  const timeoutMs = Number(raw);
  if (!Number.isFinite(timeoutMs)) return undefined;
  const left = timeoutMs - waitedMs;
  return left <= 0 ? null : encodeTimeoutMs(left);
}
