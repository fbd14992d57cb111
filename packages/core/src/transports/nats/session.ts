import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { StatusListeners } from '../shared/status.ts';
import type { NatsSettings } from './options.ts';
import type { PublishBatch } from './publish-batch.ts';

/**
 * What every part of the NATS transport shares: the settings, the current connection and its status, and
 * where failures nobody awaits are reported. The transport is the one implementation; the parts (RPC,
 * topology, pull workers, dead letters, claim checks) see only this.
 */
export interface NatsSession {
  readonly settings: NatsSettings;
  readonly status: StatusListeners;
  readonly connected: boolean;
  readonly closed: boolean;
  /** The server's max_payload, or 1 MiB before the first connection. */
  readonly maxPayload: number;
  /** Where requests and replies are published: together, once per turn of the event loop. */
  readonly outgoing: PublishBatch;
  /** The connection, or a `TRANSPORT` error saying why there is none. */
  connection(): NatsConnection;
  jetstream(): { js: JetStreamClient; jsm: JetStreamManager };
  /** Reports a failure nobody awaits, unless the transport is closed (then failures are by design). */
  report(error: unknown, context: string): void;
}
