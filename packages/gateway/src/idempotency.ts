import { createHash } from 'node:crypto';
import { ChassisError } from '@chassis/core';
import type { Redis } from 'ioredis';
import { IdempotencyKeyReused } from './errors.ts';

/**
 * `Idempotency-Key` on POST routes: a client that did not see the answer sends the request again with
 * the same key and gets the first answer, without the action running twice. The same key with a
 * different body is a mistake, answered 422. Keys are per caller (token subject, or client address).
 */

/** A finished answer, kept to be replayed. */
export interface StoredAnswer {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

interface Entry {
  /** sha-256 of the request body: a reused key with another body is refused. */
  fingerprint: string;
  answer?: StoredAnswer;
}

export interface IdempotencyStore {
  /** Claims the key for a first request; resolves to the entry already there, if any. */
  claim(key: string, fingerprint: string, ttlMs: number): Promise<Entry | undefined>;
  /** Stores the answer of the request that claimed the key. */
  complete(key: string, entry: Entry, ttlMs: number): Promise<void>;
  /** Frees a claimed key: the request failed in a way worth trying again. */
  release(key: string): Promise<void>;
}

/** In this process only: one gateway instance. */
export class MemoryIdempotencyStore implements IdempotencyStore {
  private readonly entries = new Map<string, { entry: Entry; expires: number }>();

  async claim(key: string, fingerprint: string, ttlMs: number): Promise<Entry | undefined> {
    const now = Date.now();
    const found = this.entries.get(key);
    if (found && found.expires > now) return found.entry;
    this.sweep(now);
    this.entries.set(key, { entry: { fingerprint }, expires: now + ttlMs });
    return undefined;
  }

  async complete(key: string, entry: Entry, ttlMs: number): Promise<void> {
    this.entries.set(key, { entry, expires: Date.now() + ttlMs });
  }

  async release(key: string): Promise<void> {
    this.entries.delete(key);
  }

  /** Drops expired keys now and then, so the map does not grow without end. */
  private sweep(now: number): void {
    if (this.entries.size < 10_000) return;
    for (const [key, { expires }] of this.entries) if (expires <= now) this.entries.delete(key);
  }
}

/** Shared by every gateway instance through Redis (`SET NX PX`). */
export class RedisIdempotencyStore implements IdempotencyStore {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix = 'chassis:idempotency:') {
    this.redis = redis;
    this.prefix = prefix;
  }

  async claim(key: string, fingerprint: string, ttlMs: number): Promise<Entry | undefined> {
    const id = this.prefix + key;
    const set = await this.redis.set(id, JSON.stringify({ fingerprint }), 'PX', ttlMs, 'NX');
    if (set === 'OK') return undefined;
    const raw = await this.redis.get(id);
    // Expired between the two commands: claim it again.
    if (raw === null) return this.claim(key, fingerprint, ttlMs);
    return JSON.parse(raw) as Entry;
  }

  async complete(key: string, entry: Entry, ttlMs: number): Promise<void> {
    await this.redis.set(this.prefix + key, JSON.stringify(entry), 'PX', ttlMs);
  }

  async release(key: string): Promise<void> {
    await this.redis.del(this.prefix + key);
  }
}

const KEY = /^[A-Za-z0-9_.:-]{1,255}$/;

/**
 * Runs `execute` once per (caller, route, key): a repeat with the same body gets the stored answer, one
 * with another body a 422, one while the first still runs a 409. A 5xx answer is not kept, so the
 * client may try again.
 */
export async function withIdempotency(
  store: IdempotencyStore,
  options: { key: string; scope: string; body: unknown; ttlMs: number },
  execute: () => Promise<StoredAnswer>,
): Promise<StoredAnswer & { replayed: boolean }> {
  if (!KEY.test(options.key)) {
    throw new ChassisError('VALIDATION', 'Idempotency-Key must be 1 to 255 letters, digits or . _ : -', {
      data: { fields: [{ path: 'headers.idempotency-key', message: 'letters, digits, . _ : - (at most 255)' }] },
    });
  }
  const key = `${options.scope}:${options.key}`;
  const fingerprint = fingerprintOf(options.body);
  // Without its store the key cannot be honoured: refuse before anything runs, rather than risk a second run.
  const existing = await store.claim(key, fingerprint, options.ttlMs).catch((error: unknown) => {
    throw new ChassisError(
      'UNAVAILABLE',
      'Requests with an Idempotency-Key cannot be taken now: their store is unreachable; try again shortly',
      { cause: error },
    );
  });
  if (existing) {
    if (existing.fingerprint !== fingerprint) {
      throw IdempotencyKeyReused('This Idempotency-Key was used with a different request body; use a new key', {
        key: options.key,
      });
    }
    if (!existing.answer) {
      throw new ChassisError('CONFLICT', 'A request with this Idempotency-Key is still being handled; try again', {
        retryable: true,
        data: { key: options.key },
      });
    }
    return { ...existing.answer, replayed: true };
  }
  let answer: StoredAnswer;
  try {
    answer = await execute();
  } catch (error) {
    // A client error is an answer too (the same request would fail the same way); a server error is not.
    const status = (error as { status?: unknown }).status;
    if (!(error instanceof ChassisError) || typeof status !== 'number' || status >= 500) {
      await store.release(key).catch(() => undefined);
      throw error;
    }
    await store.complete(key, { fingerprint, answer: errorAnswer(error) }, options.ttlMs).catch(() => undefined);
    throw error;
  }
  // The store going away now must not turn an answer that exists into an error: the client gets it, and a
  // retry finds the key claimed (CONFLICT, retryable) until its time is up.
  await store.complete(key, { fingerprint, answer }, options.ttlMs).catch(() => undefined);
  return { ...answer, replayed: false };
}

/** sha-256 of the body as JSON. */
function fingerprintOf(body: unknown): string {
  let json: string;
  try {
    json = JSON.stringify(body ?? null);
  } catch (error) {
    // JSON.parse takes a body nested thousands deep within the size limit; JSON.stringify then runs out of
    // stack. That is the request's fault, not a server error.
    if (!(error instanceof RangeError)) throw error;
    throw new ChassisError('VALIDATION', 'The request body is nested too deeply to be used with an Idempotency-Key');
  }
  return createHash('sha256').update(json).digest('base64url');
}

/** A client error is replayed by throwing it again; its answer is marked so. */
function errorAnswer(error: ChassisError): StoredAnswer {
  return { status: error.status, body: { $error: error.toJSON() }, headers: {} };
}

/** The error a stored answer stands for, if it is one. */
export function storedError(answer: StoredAnswer): ChassisError | undefined {
  const body = answer.body as { $error?: unknown } | null;
  return body && typeof body === 'object' && '$error' in body ? ChassisError.fromJSON(body.$error) : undefined;
}
