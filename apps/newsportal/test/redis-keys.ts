import { randomUUID } from 'node:crypto';
import { servers } from '@chassis/testing';
import { Redis } from 'ioredis';

/** A key prefix of this test run's own: runs beside each other (and the started portal) never share keys. */
export function testKeyPrefix(): string {
  return `newsportal-test-${randomUUID().slice(0, 8)}:`;
}

/** Removes every key the run made. */
export async function removeKeys(prefix: string, url = servers.redis.url): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
