import type { Message, Options } from 'amqplib';
import { Header } from '../../envelope.ts';
import type { WireMessage } from '../transport.ts';

/** Headers the broker or this transport add, which are not part of the message the runtime sent. */
const FOREIGN_HEADER = /^x-(death$|delivery-count$|first-death-|last-death-|chassis-)/;
/** Set by a quorum queue on a redelivery: how many earlier deliveries of the message were returned. */
const DELIVERY_COUNT = 'x-delivery-count';

/** The AMQP properties of a message: its headers, content type and id, and `extra` on top. */
export function propertiesOf(message: WireMessage, extra: Options.Publish = {}): Options.Publish {
  const properties: Options.Publish = { headers: { ...message.headers } };
  const contentType = message.headers[Header.contentType];
  if (contentType) properties.contentType = contentType;
  const id = message.headers[Header.id];
  if (id) properties.messageId = id;
  return { ...properties, ...extra };
}

export function toWire(message: Message): WireMessage {
  return { headers: readHeaders(message), body: message.content };
}

/**
 * AMQP headers back to the string map the runtime reads. Messages published by other clients may carry
 * none, or values of other types: numbers and bytes become strings, tables and arrays are left out.
 */
function readHeaders(message: Message): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(message.properties.headers ?? {})) {
    if (FOREIGN_HEADER.test(key)) continue;
    const text = headerText(value);
    if (text !== undefined) headers[key] = text;
  }
  const contentType: unknown = message.properties.contentType;
  if (headers[Header.contentType] === undefined && typeof contentType === 'string') {
    headers[Header.contentType] = contentType;
  }
  return headers;
}

export function headerText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
}

/** The deliveries of this copy that came back unsettled; 0 from a classic queue, which does not count. */
export function deliveryCountOf(message: Message): number {
  const raw: Record<string, unknown> = message.properties.headers ?? {};
  const count = Number(headerText(raw[DELIVERY_COUNT]));
  return Number.isInteger(count) && count > 0 ? count : 0;
}

export function attemptOf(headers: Record<string, string>): number {
  const attempt = Number.parseInt(headers[Header.attempt] ?? '', 10);
  return Number.isFinite(attempt) && attempt >= 1 ? attempt : 1;
}

export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
