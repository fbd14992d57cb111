import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * A response cache for idempotent actions, keyed by the action and its input: a repeated question is
 * answered without a call while the answer is fresh. Memory by default; Redis when several instances
 * should share what they learned.
 */
export interface CachePolicy {
  ttlMs: number;
}

export interface CacheStore {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown, ttlMs: number): Promise<void>;
  close?(): Promise<void>;
}

/** A stable key: the same input with its keys in any order hashes the same. */
export function cacheKey(action: string, input: unknown): string {
  return `chassis:cache:${action}:${createHash('sha1').update(stableJson(input)).digest('base64url')}`;
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    // The default sort orders strings by UTF-16 code units, as `<` does: no comparator to get wrong.
    const keys = Object.keys(record)
      .filter((k) => record[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(record[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** In process, bounded: the least recently used entries go first. */
export class MemoryCacheStore implements CacheStore {
  private readonly entries = new Map<string, { value: unknown; expires: number }>();

  private readonly maxEntries: number;

  constructor(maxEntries = 10_000) {
    this.maxEntries = maxEntries;
  }

  async get(key: string): Promise<unknown> {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expires <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, entry);
    // A copy, so a caller that mutates its answer cannot change the next caller's.
    return structuredClone(entry.value);
  }

  async set(key: string, value: unknown, ttlMs: number): Promise<void> {
    this.entries.delete(key);
    this.entries.set(key, { value: structuredClone(value), expires: Date.now() + ttlMs });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }
}

/** Shared by every instance through Redis (`REDIS_URL`); values are stored as JSON with a TTL. */
export class RedisCacheStore implements CacheStore {
  private readonly redis: Redis;

  constructor(redis: Redis) {
    this.redis = redis;
    // A cache is best-effort: while Redis is away, calls go to the target (the engine treats a failed
    // read as a miss), so a connection error is not worth more than ioredis's own reconnecting.
    redis.on('error', () => undefined);
  }

  static async connect(url: string): Promise<RedisCacheStore> {
    const { Redis } = await import('ioredis');
    return new RedisCacheStore(new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 }));
  }

  async get(key: string): Promise<unknown> {
    const raw = await this.redis.get(key);
    return raw === null ? undefined : JSON.parse(raw);
  }

  async set(key: string, value: unknown, ttlMs: number): Promise<void> {
    await this.redis.set(key, JSON.stringify(value), 'PX', Math.max(1, Math.round(ttlMs)));
  }

  async close(): Promise<void> {
    await this.redis.quit();
  }
}
