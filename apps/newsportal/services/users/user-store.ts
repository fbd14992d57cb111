import { ChassisError } from '@chassis/core';
import { Redis } from 'ioredis';

/** A user as the database keeps it: the hash, never the password. */
export interface StoredUser {
  id: number;
  name: string;
  email: string;
  password_hash: string;
}

/** The latest write of a user not yet in the database: what a write-behind worker persists. */
export type PendingWrite = { op: 'upsert'; user: StoredUser } | { op: 'delete'; id: number; email: string };

/** The write queues of the book, one per operation. */
export const QUEUES = { create: 'CREATE_USER', update: 'UPDATE_USER', delete: 'DELETE_USER' } as const;
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

export const RedisDown = (cause?: unknown) =>
  new ChassisError(
    'UNAVAILABLE',
    'Redis is unreachable: user writes are refused until it is back (nothing was written)',
    {
      cause,
      data: { dependency: 'redis' },
    },
  );

export const DuplicateEmail = (email: string) =>
  new ChassisError('DUPLICATE_EMAIL', `The e-mail ${email} belongs to another user`, {
    status: 409,
    retryable: false,
    data: { fields: [{ path: 'email', message: 'already in use' }] },
  });

/**
 * One write, all of it or none (a Lua script runs alone in Redis): claim the e-mail (refused when another
 * user holds it), release the previous one, record the pending write, refresh or drop the cached user,
 * and queue the id, noting when the user's oldest write not yet persisted was queued (kept by a later
 * write, so the queue's age counts from the first). KEYS: pending, cache, queue, e-mail to claim, e-mail
 * to release, queued-at. ARGV: id, pending JSON, cached JSON ('' drops the cache), cache TTL s, claim
 * ('1'), release ('1'), now in ms.
 */
const WRITE_SCRIPT = `
local id = ARGV[1]
if ARGV[5] == '1' then
  local owner = redis.call('GET', KEYS[4])
  if owner and owner ~= id then return 0 end
  redis.call('SET', KEYS[4], id)
end
if ARGV[6] == '1' and redis.call('GET', KEYS[5]) == id then redis.call('DEL', KEYS[5]) end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == '' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4]) end
redis.call('RPUSH', KEYS[3], id)
redis.call('SET', KEYS[6], ARGV[7], 'NX')
return 1`;

/** Drops the pending write (and when it was queued) once persisted, unless a newer write replaced it meanwhile. */
const SETTLE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1], KEYS[2]) end
return 0`;

/** A write queue's backlog: how many ids wait, and how long the first in line has waited. */
export interface QueueBacklog {
  queue: QueueName;
  length: number;
  /** Since the oldest write not yet persisted of the user first in line was queued; 0 when empty. */
  oldestAgeSeconds: number;
}

export interface UserStoreOptions {
  url: string;
  /** Every key starts with it: `newsportal:` by default; tests give each run its own. */
  keyPrefix: string;
  /** How long a cached user lives. Default 300 s. */
  cacheTtlSeconds?: number;
}

/**
 * The users' Redis: the cache of users (never with their hash), their pending writes, the e-mail index
 * that makes a duplicate e-mail a conflict at once, and the write queues.
 */
export class UserStore {
  readonly redis: Redis;
  readonly prefix: string;
  private readonly ttl: number;
  private readonly url: string;

  constructor(options: UserStoreOptions) {
    this.url = options.url;
    this.prefix = options.keyPrefix;
    this.ttl = options.cacheTtlSeconds ?? 300;
    // No offline queue: while Redis is away a command fails at once, so reads fall back to the
    // database and writes answer 503 instead of waiting for a reconnection.
    this.redis = this.connection();
    this.redis.on('error', () => undefined);
  }

  /** A connection of its own (a blocking pop holds one), with the same settings. */
  connection(): Redis {
    const redis = new Redis(this.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 1000,
      retryStrategy: (attempt) => Math.min(attempt * 200, 1000),
    });
    redis.on('error', () => undefined);
    return redis;
  }

  key(...parts: (string | number)[]): string {
    return `${this.prefix}${parts.join(':')}`;
  }

  get up(): boolean {
    return this.redis.status === 'ready';
  }

  /** Resolves when connected, or after `timeoutMs` whatever the state. */
  async ready(timeoutMs = 2000): Promise<void> {
    if (this.up) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  /** The cached user, or undefined on a miss. Throws when Redis is unreachable. */
  async cached(id: number): Promise<{ id: number; name: string; email: string } | undefined> {
    const raw = await this.redis.get(this.key('user', id));
    return raw === null ? undefined : JSON.parse(raw);
  }

  async cache(user: { id: number; name: string; email: string }): Promise<void> {
    await this.redis.set(this.key('user', user.id), JSON.stringify(publicUser(user)), 'EX', this.ttl);
  }

  async pending(id: number): Promise<{ raw: string; write: PendingWrite } | undefined> {
    const raw = await this.redis.get(this.key('pending', id));
    return raw === null ? undefined : { raw, write: JSON.parse(raw) as PendingWrite };
  }

  /** Who holds an e-mail in the index (a user written through Redis), if anyone. */
  async emailOwner(email: string): Promise<number | undefined> {
    const owner = await this.redis.get(this.key('email', email));
    return owner === null ? undefined : Number(owner);
  }

  /**
   * Records a write and queues it. `claim`: the e-mail the user takes (DUPLICATE_EMAIL when another
   * holds it); `release`: the one it gives up. Throws UNAVAILABLE when Redis is unreachable: nothing written.
   */
  async write(
    queue: QueueName,
    write: PendingWrite,
    options: { cacheIt: boolean; claim?: string; release?: string },
  ): Promise<void> {
    if (!this.up) throw RedisDown();
    const id = write.op === 'upsert' ? write.user.id : write.id;
    let written: unknown;
    try {
      written = await this.redis.eval(
        WRITE_SCRIPT,
        6,
        this.key('pending', id),
        this.key('user', id),
        this.key('queue', queue),
        this.key('email', options.claim ?? ''),
        this.key('email', options.release ?? ''),
        this.key('queued-at', id),
        String(id),
        JSON.stringify(write),
        options.cacheIt && write.op === 'upsert' ? JSON.stringify(publicUser(write.user)) : '',
        String(this.ttl),
        options.claim === undefined ? '0' : '1',
        options.release === undefined ? '0' : '1',
        String(Date.now()),
      );
    } catch (error) {
      // A script runs whole or not at all: failing here, it wrote nothing.
      throw RedisDown(error);
    }
    if (written === 0) throw DuplicateEmail(options.claim ?? '');
  }

  /** Forgets a persisted write, unless a newer one replaced it. */
  async settle(id: number, raw: string): Promise<void> {
    await this.redis.eval(SETTLE_SCRIPT, 2, this.key('pending', id), this.key('queued-at', id), raw);
  }

  /** Each write queue's length and age (what the users' metrics report). Throws when Redis is unreachable. */
  async backlog(): Promise<QueueBacklog[]> {
    const queues = Object.values(QUEUES);
    const heads = await this.redis
      .multi(
        queues.flatMap((queue) => [
          ['llen', this.key('queue', queue)],
          ['lindex', this.key('queue', queue), 0],
        ]),
      )
      .exec();
    const answer = (index: number) => {
      const [error, value] = heads![index]!;
      if (error) throw error;
      return value as string | number | null;
    };
    const firstIds = queues.map((_, i) => answer(2 * i + 1) as string | null);
    const queuedAt = await Promise.all(
      firstIds.map((id) => (id === null ? null : this.redis.get(this.key('queued-at', id)))),
    );
    const now = Date.now();
    return queues.map((queue, i) => ({
      queue,
      length: Number(answer(2 * i)),
      // An id whose write is already persisted (queued twice, the first pop took it) waits for nothing.
      oldestAgeSeconds: queuedAt[i] ? Math.max(0, (now - Number(queuedAt[i])) / 1000) : 0,
    }));
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

export function publicUser(user: { id: number; name: string; email: string }) {
  return { id: user.id, name: user.name, email: user.email };
}
