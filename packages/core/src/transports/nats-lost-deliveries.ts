import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';

/** The KV bucket (a stream `KV_<bucket>`, readable with `nats kv get chassis_naks <key>`) of NAK counts. */
export const NAK_BUCKET = 'chassis_naks';
const NAK_STREAM = `KV_${NAK_BUCKET}`;
const NAK_SUBJECT = `$KV.${NAK_BUCKET}`;
/** A redelivery waits at most this long for its count; then it goes on without one rather than stall. */
const KV_TIMEOUT_MS = 2_000;

export interface LostDeliveriesOptions {
  /** How long a count is kept after its last NAK: the events' retention, which outlives any redelivery delay. */
  maxAgeMs: number;
  jetstream: () => { js: JetStreamClient; jsm: JetStreamManager };
  report: (error: unknown, context: string) => void;
}

/**
 * How many deliveries of an event ended with no outcome (the consumer died mid-handler), as JetStream can
 * tell it. JetStream's delivered count adds up crashes and the runtime's own delayed NAKs (requested
 * retries, which must not use up `maxDeliveries` while a dependency is down), so the transport records, in a
 * KV bucket and before it sends the NAK, how many NAKs it sent for the message: lost = (delivered − 1) − NAKs.
 * Only retries and redeliveries touch the bucket; a first delivery and its ack cost nothing more. When the
 * bucket cannot be read, the count is unknown (`undefined`) and the event is handled as if nothing was lost.
 */
export class LostDeliveries {
  readonly #options: LostDeliveriesOptions;
  #bucket: Promise<void> | undefined;
  /** NAKs already counted for the redeliveries being handled, by ack reply subject. */
  readonly #naks = new Map<string, number>();

  constructor(options: LostDeliveriesOptions) {
    this.#options = options;
  }

  /** For a redelivery (`delivered` > 1): of the earlier deliveries, those that ended with no NAK, ack or term. */
  async unsettled(reply: string, delivered: number): Promise<number | undefined> {
    const key = keyOf(reply);
    if (!key) return undefined;
    try {
      const naks = await withTimeout(this.#read(key), KV_TIMEOUT_MS);
      this.#naks.set(reply, naks);
      return Math.max(0, delivered - 1 - naks);
    } catch (error) {
      this.#options.report(
        error,
        `Cannot read the NAK count of ${key} from the KV bucket ${NAK_BUCKET}; a handler that crashes its process on this event is not stopped by maxDeliveries`,
      );
      return undefined;
    }
  }

  /** Call before sending a NAK: afterwards its redelivery is not counted as lost. */
  async nakked(reply: string): Promise<void> {
    const key = keyOf(reply);
    if (!key) return;
    const known = this.#naks.get(reply);
    this.#naks.delete(reply);
    try {
      const naks = known ?? (deliveredOf(reply) > 1 ? await withTimeout(this.#read(key), KV_TIMEOUT_MS) : 0);
      await withTimeout(
        this.#bucketReady().then(() => this.#options.jetstream().js.publish(`${NAK_SUBJECT}.${key}`, String(naks + 1))),
        KV_TIMEOUT_MS,
      );
    } catch (error) {
      this.#options.report(
        error,
        `Cannot record a NAK of ${key} in the KV bucket ${NAK_BUCKET}; its redelivery counts it as a lost delivery`,
      );
    }
  }

  /** The message was acked or termed: its count is not needed any more (best effort; max age covers the rest). */
  settled(reply: string): void {
    const naks = this.#naks.get(reply);
    if (naks === undefined) return;
    this.#naks.delete(reply);
    const key = keyOf(reply);
    if (naks === 0 || !key) return;
    this.#options
      .jetstream()
      .jsm.streams.purge(NAK_STREAM, { filter: `${NAK_SUBJECT}.${key}` })
      .catch((error: unknown) =>
        this.#options.report(error, `Cannot delete the NAK count of ${key} from ${NAK_BUCKET}; it expires on its own`),
      );
  }

  async #read(key: string): Promise<number> {
    await this.#bucketReady();
    const stored = await this.#options.jetstream().jsm.streams.getMessage(NAK_STREAM, {
      last_by_subj: `${NAK_SUBJECT}.${key}`,
    });
    const naks = stored ? Number(stored.string()) : 0;
    return Number.isInteger(naks) && naks > 0 ? naks : 0;
  }

  /** Creates the bucket on first use, once per transport; a failed attempt is tried again next time. */
  #bucketReady(): Promise<void> {
    this.#bucket ??= this.#createBucket().catch((error: unknown) => {
      this.#bucket = undefined;
      throw error;
    });
    return this.#bucket;
  }

  async #createBucket(): Promise<void> {
    const { jsm } = this.#options.jetstream();
    try {
      await jsm.streams.info(NAK_STREAM);
      return;
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
    }
    const maxAge = nanos(this.#options.maxAgeMs);
    // The settings `nats kv add` uses, so the CLI can read and manage the bucket.
    await jsm.streams
      .add({
        name: NAK_STREAM,
        subjects: [`${NAK_SUBJECT}.>`],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.New,
        max_msgs_per_subject: 1,
        max_age: maxAge,
        duplicate_window: Math.min(maxAge, nanos(120_000)),
        allow_rollup_hdrs: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
      })
      .catch(async (error: unknown) => {
        // Another node created it in between.
        await jsm.streams.info(NAK_STREAM).catch(() => Promise.reject(error));
      });
  }
}

/**
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<streamSeq>...` (9 tokens) or, with domain and account,
 * `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<streamSeq>...`; the key names the message
 * in its consumer, which stays the same over its redeliveries: `<stream>.<consumer>.<streamSeq>`.
 */
function keyOf(reply: string): string | undefined {
  const tokens = reply.split('.');
  const at = tokens.length === 9 ? 2 : 4;
  const [stream, consumer, , streamSeq] = tokens.slice(at, at + 4);
  if (!stream || !consumer || !streamSeq || !/^\d+$/.test(streamSeq)) return undefined;
  return `${stream}.${consumer}.${streamSeq}`;
}

function deliveredOf(reply: string): number {
  const tokens = reply.split('.');
  const count = Number(tokens.length === 9 ? tokens[4] : tokens[6]);
  return Number.isInteger(count) && count > 0 ? count : 1;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from JetStream within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
