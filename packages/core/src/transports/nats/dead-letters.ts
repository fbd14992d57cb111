import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { Header } from '../../envelope.ts';
import { asTransportError } from '../shared/errors.ts';
import type { DeadLetter, WireMessage } from '../transport.ts';
import { type ClaimCheck, EMPTY } from './claim-check.ts';
import { confirmedPublish } from './confirmed-publish.ts';
import { CLAIM_HEADER, fromNatsHeaders } from './headers.ts';
import { checkSubject } from './names.ts';
import type { NatsSession } from './session.ts';
import type { Topology } from './topology.ts';

const DEAD_REASON = 'dead-letter-reason';
const DEAD_QUEUE = 'dead-letter-queue';
const DEAD_AT = 'dead-letter-at';
const DEAD_HEADERS = new Set([DEAD_REASON, DEAD_QUEUE, DEAD_AT]);

/**
 * Dead letters live in their own stream (`dlq.<queue>`), kept until a human deletes them; their large
 * bodies go to a bucket that never expires. Reading them removes nothing.
 */
export class DeadLetters {
  readonly #session: NatsSession;
  readonly #claims: ClaimCheck;
  readonly #topology: Topology;

  constructor(session: NatsSession, claims: ClaimCheck, topology: Topology) {
    this.#session = session;
    this.#claims = claims;
    this.#topology = topology;
  }

  async add(queue: string, message: WireMessage, reason: string): Promise<void> {
    checkSubject('queue', queue);
    const headers = {
      ...message.headers,
      [DEAD_REASON]: reason.replace(/[\r\n]+/g, ' '),
      [DEAD_QUEUE]: queue,
      [DEAD_AT]: String(Date.now()),
    };
    const out = await this.#claims.outgoing({ headers, body: message.body }, this.#claims.deadLetterBucket);
    // The same delivery dead-lettered twice (its term got lost) is stored once.
    const id = message.headers[Header.id];
    await confirmedPublish(
      this.#session,
      this.#topology,
      `dlq.${queue}`,
      out,
      id ? `dlq:${queue}:${id}` : undefined,
      `Dead letter of ${queue}`,
    );
  }

  /** An ephemeral, unacknowledged consumer of a queue's dead letters: it reads without removing anything. */
  async #reader(queue: string) {
    checkSubject('queue', queue);
    const { jsm } = this.#session.jetstream();
    const stream = this.#session.settings.deadLetterStream;
    // It vanishes on its own if we crash before deleting it.
    return jsm.consumers
      .add(stream, {
        filter_subject: `dlq.${queue}`,
        deliver_policy: DeliverPolicy.All,
        ack_policy: AckPolicy.None,
        mem_storage: true,
        inactive_threshold: nanos(30_000),
      })
      .catch((error: unknown) => {
        throw asTransportError(error, `Cannot read the dead letters of ${queue}`);
      });
  }

  async count(queue: string): Promise<number> {
    const info = await this.#reader(queue);
    const { jsm } = this.#session.jetstream();
    jsm.consumers.delete(info.stream_name, info.name).catch(() => undefined);
    return info.num_pending;
  }

  /** Deletes dead letters by their message id, or all of a queue's; resolves with how many went. */
  async remove(queue: string, ids: readonly string[] | 'all'): Promise<number> {
    checkSubject('queue', queue);
    const { js, jsm } = this.#session.jetstream();
    const stream = this.#session.settings.deadLetterStream;
    const doing = `Cannot delete the dead letters of ${queue}`;
    if (ids === 'all') {
      const purged = await jsm.streams.purge(stream, { filter: `dlq.${queue}` }).catch((error: unknown) => {
        throw asTransportError(error, doing);
      });
      return purged.purged;
    }
    const wanted = new Set(ids);
    if (wanted.size === 0) return 0;
    const info = await this.#reader(queue);
    const sequences: number[] = [];
    try {
      if (info.num_pending > 0) {
        const consumer = js.consumers.getConsumerFromInfo(info);
        const batch = await consumer.fetch({ max_messages: info.num_pending, expires: 5_000 });
        let seen = 0;
        for await (const msg of batch) {
          if (wanted.has(fromNatsHeaders(msg.headers)[Header.id] ?? '')) sequences.push(msg.seq);
          if (++seen >= info.num_pending) break;
        }
      }
    } finally {
      jsm.consumers.delete(stream, info.name).catch(() => undefined);
    }
    let removed = 0;
    for (const seq of sequences) {
      // A large body stays in the dead-letter bucket: it is small beside a lost letter, and a bucket
      // sweep can take it.
      if (await jsm.streams.deleteMessage(stream, seq, false).catch(() => false)) removed++;
    }
    return removed;
  }

  async read(queue: string, limit = 100): Promise<DeadLetter[]> {
    const { js, jsm } = this.#session.jetstream();
    const stream = this.#session.settings.deadLetterStream;
    const info = await this.#reader(queue);
    try {
      const count = Math.min(Math.max(0, Math.floor(limit)), info.num_pending);
      if (count === 0) return [];
      const consumer = js.consumers.getConsumerFromInfo(info);
      const batch = await consumer.fetch({ max_messages: count, expires: 5_000 });
      const letters: DeadLetter[] = [];
      for await (const msg of batch) {
        const all = fromNatsHeaders(msg.headers);
        const headers: Record<string, string> = {};
        for (const [key, value] of Object.entries(all)) if (!DEAD_HEADERS.has(key)) headers[key] = value;
        const claim = msg.headers?.get(CLAIM_HEADER);
        const body = claim ? await this.#claims.fetch(claim).catch(() => EMPTY) : msg.data;
        letters.push({
          message: { headers, body },
          reason: all[DEAD_REASON] ?? '',
          queue: all[DEAD_QUEUE] ?? queue,
          at: Number(all[DEAD_AT] ?? msg.timestampNanos / 1_000_000n),
        });
        if (letters.length >= count) break;
      }
      return letters;
    } finally {
      jsm.consumers.delete(stream, info.name).catch(() => undefined);
    }
  }
}
