import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { ChassisError } from '../../errors.ts';
import { asTransportError, messageOf } from '../shared/errors.ts';
import { isApiCode } from './errors.ts';
import type { NatsSession } from './session.ts';

/** The durable consumer of one subscription, as its instances pull from it. */
export interface ConsumerSpec {
  stream: string;
  durable: string;
  filter: string;
  /** The subscription name, used for dead letters. */
  queue: string;
  prefetch: number;
}

/**
 * What the transport needs on the server: the events and dead-letter streams, and a durable consumer per
 * subscription. Every operation is create-or-adjust and safe to race with other nodes, so it runs at
 * connect, after a reconnect (a server restarted from empty storage) and whenever something is found missing.
 */
export class Topology {
  readonly #session: NatsSession;

  constructor(session: NatsSession) {
    this.#session = session;
  }

  async ensureStreams(): Promise<void> {
    const { settings } = this.#session;
    await this.#ensureStream({
      name: settings.eventsStream,
      subjects: ['evt.>'],
      storage: StorageType.File,
      // Limits, not interest: nats-server 2.9 was seen losing a just-acknowledged message of an interest stream
      // across a restart. Events are kept for the retention period whether handled or not, which also lets an
      // operator look at recent traffic.
      retention: RetentionPolicy.Limits,
      max_age: nanos(settings.eventRetentionMs),
      discard: DiscardPolicy.Old,
      num_replicas: 1,
    });
    await this.#ensureStream({
      name: settings.deadLetterStream,
      subjects: ['dlq.>'],
      storage: StorageType.File,
      // Dead letters wait for a human, however long that takes.
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: 1,
    });
  }

  /** Creates the durable consumer of a subscription, or adjusts an existing one; safe to race with other instances. */
  async ensureConsumer(spec: ConsumerSpec): Promise<void> {
    const { jsm } = this.#session.jetstream();
    const config: Partial<ConsumerConfig> = {
      durable_name: spec.durable,
      description: `Chassis subscription ${spec.queue} to ${spec.filter}`,
      filter_subject: spec.filter,
      ack_policy: AckPolicy.Explicit,
      // A new subscription starts at the events published from now on: replaying the whole history into a
      // service that just appeared would surprise it. An existing one resumes where it left off regardless.
      deliver_policy: DeliverPolicy.New,
      ack_wait: nanos(this.#session.settings.ackWaitMs),
      // The runtime counts attempts and dead-letters; JetStream must never drop a message on its own.
      max_deliver: -1,
      // Shared by every instance; each one keeps at most its prefetch in flight.
      max_ack_pending: Math.max(1_000, spec.prefetch * 10),
    };
    for (let tries = 0; ; tries++) {
      let existing: ConsumerInfo | undefined;
      try {
        existing = await jsm.consumers.info(spec.stream, spec.durable);
      } catch (error) {
        if (isApiCode(error, JetStreamApiCodes.StreamNotFound)) {
          await this.ensureStreams();
        } else if (!isApiCode(error, JetStreamApiCodes.ConsumerNotFound)) {
          throw asTransportError(error, `Cannot read the JetStream consumer ${spec.durable}`);
        }
      }
      if (!existing) {
        try {
          await jsm.consumers.add(spec.stream, config);
          return;
        } catch (error) {
          // Another instance created it a moment ago with a config we then adjust, or the stream was missing.
          if (tries < 3) continue;
          throw asTransportError(error, `Cannot create the JetStream consumer ${spec.durable}`);
        }
      }
      const current = existing.config;
      if (current.filter_subject !== spec.filter) {
        throw new ChassisError(
          'CONFLICT',
          `The durable consumer ${spec.durable} of ${spec.queue} listens to ${current.filter_subject}, not ${spec.filter}; ` +
            `if the handler now consumes another event, delete the old subscription: nats consumer rm ${spec.stream} ${spec.durable}`,
          { retryable: false },
        );
      }
      const wantAckPending = config.max_ack_pending ?? 0;
      if (current.ack_wait !== config.ack_wait || (current.max_ack_pending ?? 0) < wantAckPending) {
        await jsm.consumers
          .update(spec.stream, spec.durable, {
            ack_wait: config.ack_wait,
            max_ack_pending: Math.max(current.max_ack_pending ?? 0, wantAckPending),
          })
          .catch((error: unknown) =>
            this.#session.report(error, `Cannot adjust the JetStream consumer ${spec.durable}`),
          );
      }
      return;
    }
  }

  /**
   * Create-or-update, safe to race with other nodes. An existing stream gets our subjects and retention period;
   * what an operator tuned beyond that (size limits, replicas) is left alone.
   */
  async #ensureStream(config: Partial<StreamConfig> & { name: string; subjects: string[] }): Promise<void> {
    const { jsm } = this.#session.jetstream();
    let existing: StreamConfig | undefined;
    try {
      existing = (await jsm.streams.info(config.name)).config;
    } catch (error) {
      if (!isApiCode(error, JetStreamApiCodes.StreamNotFound)) throw error;
    }
    if (!existing) {
      try {
        await jsm.streams.add(config);
        return;
      } catch (addError) {
        // Another node may have created it in between; anything else (e.g. overlapping subjects) is for a human.
        existing = await jsm.streams.info(config.name).then(
          (info) => info.config,
          () => {
            throw new ChassisError(
              'TRANSPORT',
              `Cannot create the JetStream stream ${config.name}: ${messageOf(addError)}`,
              {
                cause: addError,
                retryable: false,
              },
            );
          },
        );
      }
    }
    if (existing.retention !== config.retention) {
      this.#session.report(
        new ChassisError('TRANSPORT', `it has retention ${existing.retention}, Chassis expects ${config.retention}`),
        `The JetStream stream ${config.name} was not created by this version; recreate it when it is empty (nats stream rm ${config.name})`,
      );
    }
    const subjects = existing.subjects ?? [];
    const missing = config.subjects.filter((subject) => !subjects.includes(subject));
    const maxAge = config.max_age ?? existing.max_age;
    if (missing.length > 0 || maxAge !== existing.max_age) {
      await jsm.streams.update(config.name, { ...existing, subjects: [...subjects, ...missing], max_age: maxAge });
    }
  }
}
