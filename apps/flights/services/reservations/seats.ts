import { ChassisError, isChassisError } from '@chassis/core';
import { Redis, ReplyError } from 'ioredis';

/**
 * Seats in Redis as the book keeps them: one hash per flight, `flights:<flight_id>`, field the seat
 * number, value the customer id. Every change is one atomic step on the server — `HSETNX` to reserve, a
 * Lua script to release (only by the holder) and to rebook (the new seat taken and the old one freed
 * together, or neither) — so concurrent requests cannot both win, whichever instance serves them.
 */

/** Release a seat if `customer` holds it. KEYS: the flight's hash. ARGV: seat, customer. */
const RELEASE = `
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if not holder then return 'NOT_RESERVED' end
if holder ~= ARGV[2] then return 'NOT_HOLDER' end
redis.call('HDEL', KEYS[1], ARGV[1])
return 'OK'`;

/** Move `customer` from one seat to another. KEYS: old flight's hash, new flight's. ARGV: old seat, customer, new seat. */
const REBOOK = `
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if not holder then return 'NOT_RESERVED' end
if holder ~= ARGV[2] then return 'NOT_HOLDER' end
if KEYS[1] == KEYS[2] and ARGV[1] == ARGV[3] then return 'OK' end
if redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[2]) == 0 then return 'SEAT_TAKEN' end
redis.call('HDEL', KEYS[1], ARGV[1])
return 'OK'`;

export type ChangeOutcome = 'OK' | 'NOT_RESERVED' | 'NOT_HOLDER' | 'SEAT_TAKEN';

interface SeatCommands {
  releaseSeat(key: string, seat: string, customer: string): Promise<ChangeOutcome>;
  rebookSeat(
    oldKey: string,
    newKey: string,
    oldSeat: string,
    customer: string,
    newSeat: string,
  ): Promise<ChangeOutcome>;
}

export class SeatStore {
  private readonly redis: Redis & SeatCommands;

  /** `keyPrefix` goes before every key (tests and several systems on one Redis keep apart by it). */
  constructor(url: string, keyPrefix = '') {
    // No offline queue: while Redis is down a command fails at once (a 503) instead of holding the request.
    const redis = new Redis(url, { keyPrefix, maxRetriesPerRequest: 1, enableOfflineQueue: false });
    redis.on('error', () => undefined); // reported by the commands that fail and by the health check
    redis.defineCommand('releaseSeat', { numberOfKeys: 1, lua: RELEASE });
    redis.defineCommand('rebookSeat', { numberOfKeys: 2, lua: REBOOK });
    this.redis = redis as Redis & SeatCommands;
  }

  /** Resolves once connected, or after `timeoutMs` anyway: the service starts while Redis is down and answers 503. */
  async connected(timeoutMs = 2000): Promise<void> {
    if (this.redis.status === 'ready') return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** True when the seat was free and is now the customer's. */
  reserve(flightId: string, seat: string, customer: string): Promise<boolean> {
    return unavailableWhenDown(async () => (await this.redis.hsetnx(key(flightId), seat, customer)) === 1);
  }

  list(flightId: string): Promise<Record<string, string>> {
    return unavailableWhenDown(() => this.redis.hgetall(key(flightId)));
  }

  counts(flightIds: readonly string[]): Promise<Record<string, number>> {
    return unavailableWhenDown(async () => {
      const pipeline = this.redis.pipeline();
      for (const id of flightIds) pipeline.hlen(key(id));
      const results = (await pipeline.exec()) ?? [];
      const counts: Record<string, number> = {};
      flightIds.forEach((id, i) => {
        const [error, count] = results[i] ?? [new Error('no answer')];
        if (error) throw error;
        counts[id] = Number(count);
      });
      return counts;
    });
  }

  release(flightId: string, seat: string, customer: string): Promise<ChangeOutcome> {
    return unavailableWhenDown(() => this.redis.releaseSeat(key(flightId), seat, customer));
  }

  rebook(
    flightId: string,
    seat: string,
    customer: string,
    newFlightId: string,
    newSeat: string,
  ): Promise<ChangeOutcome> {
    return unavailableWhenDown(() => this.redis.rebookSeat(key(flightId), key(newFlightId), seat, customer, newSeat));
  }

  async ping(): Promise<void> {
    await unavailableWhenDown(() => this.redis.ping());
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

function key(flightId: string): string {
  return `flights:${flightId}`;
}

/** Redis not answering is a 503 (UNAVAILABLE, retryable); a command Redis refused stays a failure. */
async function unavailableWhenDown<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isChassisError(error) || error instanceof ReplyError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new ChassisError('UNAVAILABLE', `Redis cannot be reached: ${message}`, { cause: error });
  }
}
