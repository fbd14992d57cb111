import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Database, EventStore, sql } from '@chassis/data';
import { reachable, servers } from '@chassis/testing';
import pg from 'pg';
import { z } from 'zod';
import { benchDurationMs, formatTable, type Measurement, measure } from './harness.ts';

/**
 * Event store appends on the real PostgreSQL, beside pgbench's simple-update TPS on the same server in
 * the same run: how many appends per second the store gets out of the server, as a ratio of what the
 * server does with PostgreSQL's own small write transaction. Each append is a real one — an expected
 * version, the events validated against their zod schemas, the stream's row locked, NOTIFY — in its own
 * transaction, committed (synchronous_commit as the server has it).
 */

const run = promisify(execFile);
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? servers.postgres.url;
const WARMUP_MS = 1000;
const DURATION_MS = benchDurationMs(5);
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const STREAMS = 1000;

if (!Number.isInteger(CONCURRENCY) || CONCURRENCY < 1) {
  throw new TypeError(`BENCH_CONCURRENCY is one positive integer here, not "${process.env.BENCH_CONCURRENCY}"`);
}

const OrderId = z.string().min(1);
const orderEvents = {
  OrderCreated: z.object({
    orderId: OrderId,
    accountId: z.string(),
    side: z.enum(['sell', 'buy']),
    symbol: z.string(),
    quantity: z.number().int().positive(),
  }),
  OrderPlaced: z.object({ orderId: OrderId, exchangeOrderId: z.string() }),
};

function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

function pgbenchPath(): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'pgbench'))) return join(dir, 'pgbench');
  }
  for (const version of ['17', '16', '15']) {
    const path = `/usr/lib/postgresql/${version}/bin/pgbench`;
    if (existsSync(path)) return path;
  }
  throw new Error('pgbench is not installed (Debian: apt-get install postgresql-client or postgresql-contrib)');
}

/** pgbench -N (simple update: UPDATE accounts, SELECT, INSERT history) on a scratch database. */
async function pgbench(database: string): Promise<{ tps: number; output: string }> {
  const bin = pgbenchPath();
  const url = new URL(ADMIN_URL);
  const connection = [
    '-h',
    url.hostname,
    '-p',
    url.port || '5432',
    '-U',
    decodeURIComponent(url.username || 'postgres'),
  ];
  const env = { ...process.env, PGPASSWORD: decodeURIComponent(url.password) };
  console.log(`pgbench: -i on ${database}`);
  await run(bin, ['-i', '-q', ...connection, database], { env });
  const args = ['-N', '-c', String(CONCURRENCY), '-j', '2', '-T', String(PGBENCH_SECONDS), ...connection, database];
  console.log(`pgbench: ${args.slice(0, 6).join(' ')}`);
  const { stdout } = await run(bin, args, { env });
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)?.[1];
  if (!tps) throw new Error(`pgbench printed no TPS:\n${stdout}`);
  return { tps: Number(tps), output: stdout };
}

interface Slot {
  stream: string;
  version: number;
}

/**
 * One contender: `size` events per append to many streams, each append at the stream's known version.
 * Each call takes a stream no other call holds, so no two appends race on one stream: the benchmark
 * measures appends, not conflicts.
 */
function appender(store: EventStore<typeof orderEvents>, name: string, size: number): () => Promise<unknown> {
  const free: Slot[] = Array.from({ length: STREAMS }, (_, i) => ({ stream: `order-${name}-${i}`, version: 0 }));
  return async () => {
    const slot = free.shift()!;
    try {
      const orderId = `${slot.stream}-${slot.version}`;
      const events = Array.from({ length: size }, (_, i) =>
        slot.version === 0 && i === 0
          ? {
              type: 'OrderCreated' as const,
              data: { orderId, accountId: '101', side: 'sell' as const, symbol: 'BHP', quantity: 10 },
            }
          : { type: 'OrderPlaced' as const, data: { orderId, exchangeOrderId: `x-${i}` } },
      );
      const result = await store.append(slot.stream, events, { expectedVersion: slot.version });
      slot.version = result.version;
    } catch (error) {
      slot.version = await store.streamVersion(slot.stream);
      throw error;
    } finally {
      free.push(slot);
    }
  };
}

interface Row extends Measurement {
  eventsPerAppend: number;
  eventsPerSec: number;
  ratioToPgbench: number;
}

async function main(): Promise<number> {
  if (!(await reachable({ name: 'PostgreSQL', url: ADMIN_URL, port: 5432 }))) {
    console.error(`PostgreSQL is not reachable at ${ADMIN_URL}. Start it (or set BENCH_DATABASE_URL) and run again.`);
    return 1;
  }
  const startedAt = new Date();
  const suffix = randomBytes(4).toString('hex');
  const benchDb = `chassis_bench_pgbench_${suffix}`;
  const storeDb = `chassis_bench_events_${suffix}`;
  console.log(
    `event-store: appends at concurrency ${CONCURRENCY} (${DURATION_MS} ms each) beside pgbench -N -c ${CONCURRENCY} -T ${PGBENCH_SECONDS}; ${new URL(ADMIN_URL).host}`,
  );
  await admin(`create database ${benchDb}`);
  await admin(`create database ${storeDb}`);
  const rows: Row[] = [];
  let pgbenchTps = Number.NaN;
  let serverVersion = 'unknown';
  let synchronousCommit = 'unknown';
  try {
    const bench = await pgbench(benchDb);
    pgbenchTps = bench.tps;
    console.log(`pgbench: ${pgbenchTps.toFixed(0)} tps`);

    const db = await Database.open(databaseUrl(storeDb), { poolSize: CONCURRENCY });
    try {
      const settings = await sql<{ version: string; sync: string }>`
        select current_setting('server_version') as version, current_setting('synchronous_commit') as sync`.execute(
        db.kysely,
      );
      serverVersion = settings.rows[0]?.version ?? serverVersion;
      synchronousCommit = settings.rows[0]?.sync ?? synchronousCommit;
      const contenders = [
        { name: 'append 1 event', size: 1, notify: true },
        { name: 'append 10 events', size: 10, notify: true },
        { name: 'append 1, no NOTIFY', size: 1, notify: false },
      ];
      for (const contender of contenders) {
        const service = `bench-${contender.size}-${contender.notify ? 'n' : 'q'}`;
        const store = new EventStore(db, { service, schemas: orderEvents, notify: contender.notify });
        await store.install();
        const m = await measure(contender.name, CONCURRENCY, appender(store, service, contender.size), {
          warmupMs: WARMUP_MS,
          durationMs: DURATION_MS,
        });
        rows.push({
          ...m,
          eventsPerAppend: contender.size,
          eventsPerSec: m.opsPerSec * contender.size,
          ratioToPgbench: m.opsPerSec / pgbenchTps,
        });
      }
    } finally {
      await db.close();
    }
  } finally {
    await admin(`drop database if exists ${benchDb} with (force)`);
    await admin(`drop database if exists ${storeDb} with (force)`);
  }

  console.log('');
  console.log(
    formatTable([
      ['contender', 'concurrency', 'appends/s', 'events/s', 'p50 ms', 'p99 ms', 'vs pgbench', 'errors'],
      [
        'pgbench -N (tps)',
        String(CONCURRENCY),
        Math.round(pgbenchTps).toLocaleString('en-US'),
        '',
        '',
        '',
        '1.00×',
        '',
      ],
      ...rows.map((r) => [
        r.name,
        String(r.concurrency),
        Math.round(r.opsPerSec).toLocaleString('en-US'),
        Math.round(r.eventsPerSec).toLocaleString('en-US'),
        r.p50Ms.toFixed(3),
        r.p99Ms.toFixed(3),
        `${r.ratioToPgbench.toFixed(2)}×`,
        String(r.errors),
      ]),
    ]),
  );

  const file = new URL(`../results/event-store-${startedAt.toISOString().replaceAll(':', '-')}.json`, import.meta.url);
  await mkdir(new URL('.', file), { recursive: true });
  const report = {
    benchmark: 'event-store',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    server: { host: new URL(ADMIN_URL).host, version: serverVersion, synchronousCommit },
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    concurrency: CONCURRENCY,
    warmupMs: WARMUP_MS,
    durationMs: DURATION_MS,
    pgbench: { args: `-N -c ${CONCURRENCY} -j 2 -T ${PGBENCH_SECONDS}`, tps: pgbenchTps },
    results: rows,
  };
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nresults written to ${file.pathname}`);
  return rows.some((r) => r.errors > 0) ? 1 : 0;
}

process.exitCode = await main();
setTimeout(() => {
  console.error(`still running 5 s after the end; open resources: ${process.getActiveResourcesInfo().join(', ')}`);
  process.exit();
}, 5000).unref();
