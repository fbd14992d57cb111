import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Database } from '@chassis/data';
import { launchDistributed } from '@chassis/flights/launcher';
import { freePort } from '@chassis/testing';
import {
  benchConcurrencies,
  benchDurationMs,
  formatTable,
  type Measurement,
  measure,
  writeResults,
} from './harness.ts';

/**
 * Flight reservations through the BFF, on the distributed topology (three processes over NATS; the
 * flights service on MariaDB, `DATABASE_URL`; reservations on `REDIS_URL`): seat-chart reads per second, and
 * reserve-then-release cycles per second (each a reservation and a release, two writes to Redis behind
 * two calls of the BFF), beside `redis-benchmark` running `HSETNX` against the same Redis — what Redis
 * alone does with the command every reservation comes down to. Not a test: it measures and prints.
 */
const run = promisify(execFile);
const DURATION_MS = benchDurationMs(5);
const CONCURRENCIES = benchConcurrencies('32');
const transport = process.env.CHASSIS_TRANSPORT ?? 'nats://127.0.0.1:4222';
const databaseUrl = process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const schema = `bench_flights_${randomBytes(4).toString('hex')}`;
const FLIGHT_ID = '5c1e5c5e-8f2b-4b0e-9d5a-2a5322027517';
const startedAt = new Date();

console.log(`flights bench: BFF → NATS → flights (${databaseUrl}, schema ${schema}) and reservations (${redisUrl})`);
const system = await launchDistributed({
  transport,
  databaseUrl,
  flightsSchema: schema,
  redisUrl,
  redisKeyPrefix: `${schema}:`,
  port: await freePort(),
  flightsPort: await freePort(),
  reservationsPort: await freePort(),
  rateLimitPerMinute: 'off',
  output: () => undefined,
});
const results: Measurement[] = [];
let redisBenchmark = '';
try {
  const token = await login(system.url);
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const expectStatus = async (response: Response, status: number) => {
    await response.arrayBuffer();
    if (response.status !== status) throw new Error(`expected ${status}, got ${response.status}`);
  };
  for (const concurrency of CONCURRENCIES) {
    results.push(
      await measure(
        'seat chart (GET /api/flights/AA2532/seats)',
        concurrency,
        async () =>
          expectStatus(await fetch(`${system.url}/api/flights/AA2532/seats?date=2027-05-17`, { headers }), 200),
        { durationMs: DURATION_MS },
      ),
    );
    // A seat from a pool of free ones, reserved then released and put back: the plane never fills.
    const free = Array.from({ length: 156 }, (_, i) => `${8 + Math.floor(i / 6)}${'ABCDEF'[i % 6]}`);
    results.push(
      await measure(
        'reserve + release (POST, DELETE /api/reservations)',
        concurrency,
        async () => {
          const seat = free.shift();
          if (!seat) throw new Error('more workers than seats');
          try {
            const body = JSON.stringify({ flight_id: FLIGHT_ID, seat_num: seat, customer_id: `bench-${seat}` });
            await expectStatus(await fetch(`${system.url}/api/reservations`, { method: 'POST', headers, body }), 201);
            await expectStatus(await fetch(`${system.url}/api/reservations`, { method: 'DELETE', headers, body }), 204);
          } finally {
            free.push(seat);
          }
        },
        { durationMs: DURATION_MS },
      ),
    );
  }
  const redis = new URL(redisUrl);
  const key = `${schema}:redis-benchmark`;
  const { stdout } = await run('redis-benchmark', [
    '-h',
    redis.hostname,
    '-p',
    redis.port || '6379',
    '-c',
    String(CONCURRENCIES[0]),
    '-n',
    '200000',
    '-r',
    '100000',
    '-q',
    'HSETNX',
    key,
    'seat:__rand_int__',
    'customer',
  ]);
  redisBenchmark = stdout.trim().split('\r').pop()!.trim();
  await run('redis-cli', ['-h', redis.hostname, '-p', redis.port || '6379', 'DEL', key]);
} finally {
  await system.stop();
  const db = await Database.open(databaseUrl);
  const drop = db.kysely.schema.dropSchema(schema).ifExists();
  await (db.kind === 'postgres' || db.kind === 'pglite' ? drop.cascade() : drop).execute();
  await db.close();
}

console.log(
  `\n${formatTable([
    ['through the BFF', 'concurrency', 'per second', 'p50 ms', 'p99 ms', 'errors'],
    ...results.map((r) => [
      r.name,
      String(r.concurrency),
      Math.round(r.opsPerSec).toLocaleString('en-US'),
      r.p50Ms.toFixed(2),
      r.p99Ms.toFixed(2),
      String(r.errors),
    ]),
  ])}`,
);
console.log(`\nredis-benchmark HSETNX, ${CONCURRENCIES[0]} clients: ${redisBenchmark}`);
await writeResults('flights', startedAt, { transport, databaseUrl, redisUrl, results, redisBenchmark });

async function login(url: string): Promise<string> {
  const response = await fetch(`${url}/api/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'agent', password: 'agent-password' }),
  });
  return ((await response.json()) as { access_token: string }).access_token;
}
