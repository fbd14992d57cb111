import type { ChassisNode } from '@chassis/core';
import type { Redis } from 'ioredis';

/** The gateway's Redis: the one it was given, or one it opened from a URL (and so closes). */
export interface GatewayRedis {
  redis: Redis | undefined;
  /** Set when the gateway opened the connection itself. */
  own: Redis | undefined;
}

/** From the `redis` option: a client as given, a URL, or else `REDIS_URL`; none without either. */
export async function gatewayRedis(option: string | Redis | undefined, log: ChassisNode['log']): Promise<GatewayRedis> {
  if (typeof option === 'object') return { redis: option, own: undefined };
  const url = option ?? (process.env.REDIS_URL || undefined);
  if (!url) return { redis: undefined, own: undefined };
  // Loaded here: a gateway without Redis (the embedded default) is spared ioredis (39 modules, 2 MB of
  // heap, ~20 MB RSS measured on import).
  const { Redis } = await import('ioredis');
  // No offline queue: while Redis is unreachable a command fails at once instead of holding the request.
  const own = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: false });
  await watchRedis(own, log);
  return { redis: own, own };
}

/**
 * Says when the gateway's Redis goes away and comes back (rate limits are not enforced and
 * Idempotency-Key requests are refused meanwhile), once per outage, and waits up to 2 s for the first
 * connection so that a gateway starting beside its Redis begins with both.
 */
async function watchRedis(redis: Redis, log: ChassisNode['log']): Promise<void> {
  let down = false;
  redis.on('error', (error: Error) => {
    if (down) return;
    down = true;
    log.warn(
      { err: error },
      'Redis is unreachable: rate limits are not enforced and requests with an Idempotency-Key are refused (503) until it is back',
    );
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    log.info('Redis is back: rate limits and Idempotency-Key requests work again');
  });
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 2000);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
