import { StorageType } from '@nats-io/jetstream';
import { type ObjectStore, Objm } from '@nats-io/obj';
import { headers as createHeaders, type Msg, type MsgHdrs, nanos, nuid } from '@nats-io/transport-node';
import { ChassisError } from '../../errors.ts';
import { asTransportError } from '../shared/errors.ts';
import type { WireMessage } from '../transport.ts';
import { frame } from './frame.ts';
import { CLAIM_HEADER, type ReadHeaders, readHeaders, sealedNatsHeaders, toNatsHeaders } from './headers.ts';
import type { NatsSession } from './session.ts';

/** Room left in max_payload for what JetStream and the protocol add (Nats-Msg-Id, status line). */
const PAYLOAD_MARGIN = 1024;
export const EMPTY = new Uint8Array(0);

/** A message as it goes on the wire; `claim` names the stored body when it did not fit. */
export interface Outgoing {
  headers: MsgHdrs | undefined;
  body: Uint8Array;
  claim?: string;
}

/**
 * Bodies too large for one NATS message go to a JetStream Object Store and travel as a header naming
 * them (`chassis-claim: <bucket>/<object>`); the reader fetches them back. Everything else goes as it is:
 * `direct` and `received` are the hot path and allocate nothing beyond the NATS headers.
 */
export class ClaimCheck {
  readonly #session: NatsSession;
  readonly #stores = new Map<string, Promise<ObjectStore>>();

  constructor(session: NatsSession) {
    this.#session = session;
  }

  /** Where dead-lettered bodies go: kept until deleted, unlike the others, which expire with the events. */
  get deadLetterBucket(): string {
    return `${this.#session.settings.payloadBucket}-dlq`;
  }

  fits(headers: Record<string, string>, body: Uint8Array): boolean {
    // An upper bound, cheap enough for every message: UTF-8 takes at most 3 bytes per UTF-16 unit.
    let headerBytes = 0;
    for (const key in headers) headerBytes += (key.length + headers[key]!.length) * 3 + 4;
    return body.length + headerBytes + PAYLOAD_MARGIN <= this.#session.maxPayload;
  }

  /**
   * Headers and body as they go on the wire when the body fits in one message; else undefined. `sealed`:
   * the message goes to `publish` as it is, nothing adds headers to it (RPC requests and replies).
   * `framed`: its envelope goes in a frame at the front of the body (`frame.ts`), not in headers.
   */
  direct(message: WireMessage, sealed = false, framed = false): Outgoing | undefined {
    if (!this.fits(message.headers, message.body)) return undefined;
    // The frame is no longer than the header block it replaces, so what fits one way fits the other.
    const body = framed ? frame(message.headers, message.body) : undefined;
    if (body) return { headers: undefined, body };
    return {
      headers: sealed ? sealedNatsHeaders(message.headers) : toNatsHeaders(message.headers),
      body: message.body,
    };
  }

  /** Headers and body as they go on the wire, the body stored in `bucket` when it does not fit. */
  async outgoing(message: WireMessage, bucket: string): Promise<Outgoing> {
    return this.direct(message) ?? this.claimed(message, bucket);
  }

  async claimed(message: WireMessage, bucket: string): Promise<Outgoing & { headers: MsgHdrs; claim: string }> {
    const headers = toNatsHeaders(message.headers) ?? createHeaders();
    const name = nuid.next();
    try {
      const store = await this.#store(bucket);
      await store.putBlob({ name }, message.body);
    } catch (error) {
      throw asTransportError(error, `Cannot store a ${message.body.length}-byte body in the object store ${bucket}`);
    }
    const claim = `${bucket}/${name}`;
    headers.set(CLAIM_HEADER, claim);
    return { headers, body: EMPTY, claim };
  }

  /** The message as the runtime sees it, when its body came with it (no claim check); else undefined. */
  received(msg: Msg, read: ReadHeaders = readHeaders(msg)): WireMessage | undefined {
    return read.claim === undefined ? { headers: read.headers, body: read.body } : undefined;
  }

  /** The message as the runtime sees it; `once` deletes a claimed body read by its only reader. */
  async incoming(msg: Msg, once: boolean, read: ReadHeaders = readHeaders(msg)): Promise<WireMessage> {
    if (read.claim === undefined) return { headers: read.headers, body: read.body };
    const body = await this.fetch(read.claim);
    if (once) void this.delete(read.claim);
    return { headers: read.headers, body };
  }

  async fetch(claim: string): Promise<Uint8Array> {
    const [bucket, name] = splitClaim(claim);
    let body: Uint8Array | null;
    try {
      body = await (await this.#store(bucket)).getBlob(name);
    } catch (error) {
      throw asTransportError(error, `Cannot fetch the body ${claim} from the object store`);
    }
    if (!body) {
      throw new ChassisError(
        'BAD_MESSAGE',
        `The body ${claim} is no longer in the object store (kept ${this.#session.settings.eventRetentionMs} ms)`,
      );
    }
    return body;
  }

  async delete(claim: string): Promise<void> {
    const [bucket, name] = splitClaim(claim);
    try {
      await (await this.#store(bucket)).delete(name);
    } catch (error) {
      this.#session.report(error, `Cannot delete the body ${claim}; it expires on its own`);
    }
  }

  /** Opens a bucket, creating it if needed: bodies of dead letters are kept, others expire with the events. */
  #store(bucket: string): Promise<ObjectStore> {
    let store = this.#stores.get(bucket);
    if (!store) {
      const { js } = this.#session.jetstream();
      const expires = bucket !== this.deadLetterBucket;
      store = new Objm(js).create(bucket, {
        storage: StorageType.File,
        ...(expires ? { ttl: nanos(this.#session.settings.eventRetentionMs) } : {}),
      });
      store.catch(() => this.#stores.delete(bucket));
      this.#stores.set(bucket, store);
    }
    return store;
  }
}

function splitClaim(claim: string): [string, string] {
  const slash = claim.indexOf('/');
  if (slash <= 0) throw new ChassisError('BAD_MESSAGE', `Unreadable ${CLAIM_HEADER} header "${claim}"`);
  return [claim.slice(0, slash), claim.slice(slash + 1)];
}
