import type { NatsConnection, PublishOptions } from '@nats-io/transport-node';

interface Queued {
  nc: NatsConnection;
  subject: string;
  body: Uint8Array;
  options: PublishOptions | undefined;
  failed: ((error: unknown) => void) | undefined;
  wanted: (() => boolean) | undefined;
}

/**
 * The core-NATS publishes (requests and replies) of one turn of the event loop, handed to the connection
 * together at its end (`setImmediate`), so that they leave in one socket write rather than one each.
 *
 * nats.js writes what was published at the end of the microtask it was published in; requests and replies
 * made by many handlers of one socket read reach `publish` at different depths of their promise chains,
 * so under load each went out in a write of its own, and the writes were a third of the node's CPU. A
 * publish made when nothing else is in flight (`alone`) goes at once: a lone caller waits no longer.
 * Order is kept: nothing goes at once while a batch waits. A request can say whether it is still `wanted`
 * when its batch leaves.
 */
export class PublishBatch {
  #queued: Queued[] = [];
  #scheduled = false;

  publish(
    nc: NatsConnection,
    subject: string,
    body: Uint8Array,
    options: PublishOptions | undefined,
    failed: ((error: unknown) => void) | undefined,
    alone: boolean,
    wanted?: () => boolean,
  ): void {
    if (alone && !this.#scheduled) {
      send(nc, subject, body, options, failed);
      return;
    }
    this.#queued.push({ nc, subject, body, options, failed, wanted });
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Hands everything waiting to the connection now: before a flush, a drain or a close. */
  readonly flush = (): void => {
    this.#scheduled = false;
    const batch = this.#queued;
    if (batch.length === 0) return;
    this.#queued = [];
    for (const { nc, subject, body, options, failed, wanted } of batch) {
      // A request whose caller stopped waiting meanwhile (its transport closed, say) is not sent: the
      // caller was told it failed, so it must not run.
      if (wanted && !wanted()) continue;
      send(nc, subject, body, options, failed);
    }
  };
}

function send(
  nc: NatsConnection,
  subject: string,
  body: Uint8Array,
  options: PublishOptions | undefined,
  failed: ((error: unknown) => void) | undefined,
): void {
  try {
    nc.publish(subject, body, options);
  } catch (error) {
    failed?.(error);
  }
}
