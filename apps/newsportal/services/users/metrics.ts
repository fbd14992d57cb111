import { setTimeout as sleep } from 'node:timers/promises';
import type { ChassisNode, NodeExtension } from '@chassis/core';
import { Counter, Gauge } from 'prom-client';
import type { CacheReadOutcome } from './service.ts';
import type { QueueBacklog } from './user-store.ts';

/** How long a scrape waits for Redis's answer about the queues before it leaves them out. */
const SCRAPE_WAIT_MS = 1000;

/**
 * The users service's own metrics, on the node's registry (its `/metrics`), beside the chassis's:
 *
 * - `newsportal_users_cache_reads_total{outcome}`: where each `get_user` was answered from — `hit` (the
 *   cache), `pending` (a write not yet persisted), `miss` (the database, which then fills the cache),
 *   `redis-down` (the database, Redis unreachable). The hit ratio is `hit` over all of them.
 * - `newsportal_users_write_queue_length{queue}` and `newsportal_users_write_queue_oldest_age_seconds{queue}`:
 *   each write-behind queue's backlog, read from Redis at each scrape. The queues are shared by every
 *   users process, so each reports the same figures: take the `max` across them, not the sum. While
 *   Redis is unreachable the two are absent (a scrape never waits on it for long).
 *
 * A node extension: it registers them as the node starts, in the node's own registry.
 */
export class UsersMetrics implements NodeExtension {
  readonly name = 'users-metrics';
  private backlog: (() => Promise<QueueBacklog[]>) | undefined;
  private readonly cacheReads = new Counter({
    name: 'newsportal_users_cache_reads_total',
    help: 'User reads (get_user) by where they were answered from: hit, pending, miss, redis-down',
    labelNames: ['outcome'] as const,
    registers: [],
  });
  private readonly queueLength: Gauge<'queue'>;
  private readonly queueAge: Gauge<'queue'>;

  constructor() {
    // Both gauges come from one Redis round per scrape, whichever is collected first.
    let pending: Promise<QueueBacklog[] | undefined> | undefined;
    const read = () => {
      pending ??= Promise.race([this.backlog?.(), sleep(SCRAPE_WAIT_MS).then(() => undefined)])
        .catch(() => undefined)
        .finally(() => setImmediate(() => (pending = undefined)));
      return pending;
    };
    const gauge = (name: string, help: string, value: (backlog: QueueBacklog) => number): Gauge<'queue'> =>
      new Gauge({
        name,
        help,
        labelNames: ['queue'] as const,
        registers: [],
        async collect() {
          this.reset();
          for (const backlog of (await read()) ?? []) this.set({ queue: backlog.queue }, value(backlog));
        },
      });
    this.queueLength = gauge(
      'newsportal_users_write_queue_length',
      'User writes waiting on each write-behind queue (shared by every users process: take the max)',
      (backlog) => backlog.length,
    );
    this.queueAge = gauge(
      'newsportal_users_write_queue_oldest_age_seconds',
      'How long the write first in line on each write-behind queue has waited (0 when empty)',
      (backlog) => backlog.oldestAgeSeconds,
    );
    // Every outcome from the start, so that a ratio has its terms before the first of each.
    for (const outcome of ['hit', 'pending', 'miss', 'redis-down'] satisfies CacheReadOutcome[]) {
      this.cacheReads.inc({ outcome }, 0);
    }
  }

  async start(node: ChassisNode): Promise<void> {
    const { registry } = node.metrics;
    registry.registerMetric(this.cacheReads);
    registry.registerMetric(this.queueLength);
    registry.registerMetric(this.queueAge);
  }

  /** Counts one user read by where it was answered from. */
  cacheRead(outcome: CacheReadOutcome): void {
    this.cacheReads.inc({ outcome });
  }

  /** Where the queues' backlog is read from while the service runs (undefined once it stops). */
  watch(backlog: (() => Promise<QueueBacklog[]>) | undefined): void {
    this.backlog = backlog;
  }
}
