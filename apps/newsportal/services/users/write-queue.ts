import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { QUEUES, type QueueName, type UserStore } from './user-store.ts';

export interface WriteWorkersOptions {
  store: UserStore;
  /** Persists the user's pending write (a call to `users.persist_pending`). */
  persist: (id: number) => Promise<void>;
  log: { warn(object: object, message: string): void; info(object: object, message: string): void };
  /** A worker silent for this long is dead: the ids it held go back to their queues. Default 10 s. */
  leaseMs?: number;
}

/**
 * The write-behind workers: one per queue, each on a connection of its own, blocking on its queue.
 *
 * The book pops with BLPOP, which loses the id when the worker dies between the pop and the database.
 * Here the pop is BLMOVE (the same blocking pop, atomically onto the worker's own processing list):
 * the id is removed from that list only once persisted; a failure puts it back on its queue; and the ids
 * of a worker whose lease has lapsed (killed mid-item) are put back by whichever worker notices.
 */
export class WriteWorkers {
  private readonly id: string = randomUUID();
  private readonly options: WriteWorkersOptions;
  private readonly leaseMs: number;
  private readonly connections: Redis[] = [];
  private readonly loops: Promise<void>[] = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: WriteWorkersOptions) {
    this.options = options;
    this.leaseMs = options.leaseMs ?? 10_000;
  }

  private get store() {
    return this.options.store;
  }

  private processing(queue: QueueName, worker = this.id) {
    return this.store.key('processing', queue, worker);
  }

  start(): void {
    this.running = true;
    const tick = () => {
      this.renewAndRecover().catch(() => undefined);
    };
    tick();
    this.timer = setInterval(tick, Math.max(200, this.leaseMs / 3));
    for (const queue of Object.values(QUEUES)) {
      const connection = this.store.connection();
      this.connections.push(connection);
      this.loops.push(this.work(queue, connection));
    }
  }

  /** Stops popping; an item being persisted finishes first. */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.timer);
    // A blocked pop returns within its 1 s timeout; disconnecting would lose nothing either (the id is
    // on this worker's processing list), but waiting lets an item in flight finish and be removed.
    await Promise.all(this.loops);
    for (const connection of this.connections) connection.disconnect();
    await this.store.redis
      .multi()
      .del(this.store.key('worker', this.id))
      .srem(this.store.key('workers'), this.id)
      .exec()
      .catch(() => undefined);
  }

  private async work(queue: QueueName, connection: Redis): Promise<void> {
    const source = this.store.key('queue', queue);
    const processing = this.processing(queue);
    while (this.running) {
      let id: string | null;
      try {
        id = await connection.blmove(source, processing, 'LEFT', 'RIGHT', 1);
      } catch {
        // Redis is away: the queue waits there, unchanged.
        await sleep(500);
        continue;
      }
      if (id === null) continue;
      try {
        await this.options.persist(Number(id));
        await this.store.redis.lrem(processing, 1, id);
      } catch (error) {
        this.options.log.warn({ err: error, queue, id }, 'a queued user write failed; it goes back on its queue');
        await this.store.redis
          .multi()
          .lrem(processing, 1, id)
          .rpush(source, id)
          .exec()
          .catch(() => undefined);
        await sleep(500);
      }
    }
  }

  /** Keeps this worker's lease and puts back the ids of workers whose lease lapsed. */
  private async renewAndRecover(): Promise<void> {
    const { redis } = this.store;
    const workers = this.store.key('workers');
    // Registered in a set rather than found by SCAN, which would walk every key of a shared Redis.
    await redis.multi().set(this.store.key('worker', this.id), '1', 'PX', this.leaseMs).sadd(workers, this.id).exec();
    for (const worker of await redis.smembers(workers)) {
      if (worker === this.id || (await redis.exists(this.store.key('worker', worker)))) continue;
      for (const queue of Object.values(QUEUES)) {
        // First in line again: they were popped before anything queued since.
        let moved = 0;
        while (
          (await redis.lmove(this.processing(queue, worker), this.store.key('queue', queue), 'RIGHT', 'LEFT')) !== null
        ) {
          moved++;
        }
        if (moved > 0) this.options.log.info({ queue, worker, moved }, 'ids of a lost worker put back on the queue');
      }
      await redis.srem(workers, worker);
    }
  }
}
