import { Agent, request } from 'node:http';
import { Redis } from 'ioredis';
import type { CacheReadOutcome } from '../services/users/service.ts';
import { startNewsportal } from '../src/system.ts';

/**
 * `npm run bench:newsportal` (not a test): user reads per second through the gateway with the cache cold
 * (every read a miss: the database, then the cache filled) and warm (every read a hit), the hit ratio
 * the users service saw, and beside them a direct Redis GET of the same keys in the same run: what the
 * gateway, the bus and the service cost over the cache itself. Embedded (memory transport, PGlite) with
 * the local Redis (`REDIS_URL`), under a key prefix of its own. BENCH_USERS (default 2000) users,
 * BENCH_CONCURRENCY (default 16) requests in flight.
 */
const users = Number(process.env.BENCH_USERS ?? 2000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);
const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const keyPrefix = `newsportal-bench-${process.pid}:`;
const outcomes: Record<CacheReadOutcome, number> = { hit: 0, pending: 0, miss: 0, 'redis-down': 0 };

const portal = await startNewsportal({
  port: 0,
  databaseUrl: 'pglite://memory',
  env: {
    CHASSIS_TRANSPORT: 'memory',
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: keyPrefix,
    GRPC_PORT: 'off',
    OPS_PORT: 'off',
    LOG_LEVEL: 'silent',
  },
  services: {
    users: {
      // Creating the users is not what is measured: a cheap hash keeps the set-up short.
      bcryptRounds: 4,
      onCacheRead: (outcome) => {
        outcomes[outcome]++;
      },
    },
  },
});
const url = new URL(portal.url!);
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
const redis = new Redis(redisUrl);

function get(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, agent }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

async function post(path: string, body: unknown): Promise<{ id: number }> {
  const response = await fetch(`${portal.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (response.status !== 201) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as { id: number };
}

/** Runs `task` for every id, `concurrency` at a time; returns operations per second. */
async function rate(ids: readonly number[], task: (id: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < ids.length) await task(ids[next++]!);
    }),
  );
  return ids.length / ((performance.now() - started) / 1000);
}

async function removeKeys(pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = nextCursor;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

try {
  console.log(`Creating ${users} users …`);
  const ids: number[] = [];
  for (let i = 0; i < users; i++) {
    ids.push(
      (await post('/v1/users', { name: `Reader ${i}`, email: `reader-${i}@bench.example`, password: 'bench-password' }))
        .id,
    );
  }
  // Until every write-behind item is persisted, then a cold cache.
  while ((await redis.keys(`${keyPrefix}pending:*`)).length > 0) await new Promise((r) => setTimeout(r, 100));
  await removeKeys(`${keyPrefix}user:*`);

  const read = async (id: number) => {
    const status = await get(`/v1/users/${id}`);
    if (status !== 200) throw new Error(`GET /v1/users/${id}: ${status}`);
  };
  const snapshot = () => ({ ...outcomes });
  const ratio = (before: typeof outcomes) => {
    const hits = outcomes.hit - before.hit;
    const reads =
      hits +
      outcomes.miss -
      before.miss +
      outcomes.pending -
      before.pending +
      outcomes['redis-down'] -
      before['redis-down'];
    return reads === 0 ? 0 : hits / reads;
  };
  const coldBefore = snapshot();
  const cold = await rate(ids, read);
  const coldRatio = ratio(coldBefore);
  const warmBefore = snapshot();
  const warm = await rate(ids, read);
  const warmRatio = ratio(warmBefore);
  const direct = await rate(ids, (id) => redis.get(`${keyPrefix}user:${id}`));

  const rows = [
    ['reads', 'per second', 'cache hit ratio'],
    ['GET /v1/users/{id}, cache cold (database, then the cache filled)', cold.toFixed(0), coldRatio.toFixed(2)],
    ['GET /v1/users/{id}, cache warm', warm.toFixed(0), warmRatio.toFixed(2)],
    ['Redis GET of the same keys, directly', direct.toFixed(0), '—'],
  ];
  const width = rows.map((row) => row.map((cell) => cell.length)).reduce((a, b) => a.map((w, i) => Math.max(w, b[i]!)));
  console.log(`\n${users} users, ${concurrency} in flight, Node ${process.version}`);
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(width[i]!)).join('  '));
} finally {
  await removeKeys(`${keyPrefix}*`);
  redis.disconnect();
  agent.destroy();
  await portal.stop();
}
