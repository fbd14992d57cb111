import { randomBytes } from 'node:crypto';
import { Header, type Transport, type WireMessage } from '@chassis/core';
import { natsTransport } from '@chassis/core/nats';
import { Database, EventStore, installOutbox, OutboxRelay, type Publish, sql, writeOutbox } from '@chassis/data';
import { reachable, servers } from '@chassis/testing';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import pg from 'pg';
import { z } from 'zod';
import { benchDurationMs, formatTable, type Measurement, measure, percentile, writeResults } from './harness.ts';
import { pgbench } from './pgbench.ts';

/**
 * The data kit on the real PostgreSQL, beside pgbench's simple-update TPS on the same server in the same
 * run, each as a ratio of what the server does with PostgreSQL's own small write transaction:
 *
 * - Event store appends. Each append is a real one — an expected version, the events validated against
 *   their zod schemas, the stream's row locked, NOTIFY — in its own transaction, committed
 *   (synchronous_commit as the server has it).
 * - Outbox relay throughput: one relay draining a backlog of committed events (batches of 100, each a
 *   transaction that locks, reads, publishes one by one and marks them sent), publishing to nothing (the
 *   relay's own cost) and to NATS JetStream with a PubAck per event (what a node does); then events
 *   committed one per transaction by concurrent writers while the relay runs, with the time from each
 *   commit to its publish.
 */

const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? servers.postgres.url;
const WARMUP_MS = 1000;
const DURATION_MS = benchDurationMs(5);
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const STREAMS = 1000;
const NATS_URL = process.env.BENCH_NATS_URL ?? servers.nats.url;
/** Events waiting in the outbox when a backlog drain starts. */
const BACKLOG = Number(process.env.BENCH_OUTBOX_BACKLOG ?? 20_000);

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

// Outbox relay ---------------------------------------------------------------------------------------

interface RelayRow {
  name: string;
  events: number;
  seconds: number;
  eventsPerSec: number;
  /** Commit to publish, for events committed while the relay ran; NaN for a backlog drain. */
  p50Ms: number;
  p99Ms: number;
  ratioToPgbench: number;
  errors: number;
}

function outboxMessage(service: string, n: number): { event: string; message: WireMessage } {
  const orderId = `order-${n}`;
  const event = `${service}.order_created`;
  return {
    event,
    message: {
      headers: { [Header.id]: `${service}-${n}`, [Header.type]: event, [Header.contentType]: 'application/json' },
      body: Buffer.from(
        JSON.stringify({ orderId, accountId: '101', side: 'sell', symbol: 'BHP', quantity: 10, at: Date.now() }),
      ),
    },
  };
}

/** Waits until the relay has published every committed row of its service. */
async function untilRelayed(relay: OutboxRelay): Promise<void> {
  while ((await relay.lag()).pending > 0) await new Promise((resolve) => setTimeout(resolve, 20));
}

/** Relays until every row of the service's outbox is sent; resolves to the seconds it took and the errors. */
async function drain(db: Database, service: string, publish: Publish): Promise<{ seconds: number; errors: number }> {
  let errors = 0;
  const relay = new OutboxRelay(db, service, publish, { pollIntervalMs: 100, onError: () => errors++ });
  const started = performance.now();
  await relay.start();
  await untilRelayed(relay);
  const seconds = (performance.now() - started) / 1000;
  await relay.stop();
  return { seconds, errors };
}

async function backlog(db: Database, service: string, count: number): Promise<void> {
  await installOutbox(db, service);
  for (let start = 0; start < count; start += 1000) {
    const size = Math.min(1000, count - start);
    await db.transaction((trx) =>
      writeOutbox(
        trx,
        service,
        Array.from({ length: size }, (_, i) => outboxMessage(service, start + i)),
      ),
    );
  }
}

/**
 * Writers commit one event per transaction for the measured window while one relay publishes them; the
 * latency of an event runs from its commit to the end of its publish (the PubAck).
 */
async function live(db: Database, service: string, publish: Publish): Promise<RelayRow> {
  await installOutbox(db, service);
  const committedAt = new Map<string, number>();
  const latencies: number[] = [];
  let published = 0;
  let errors = 0;
  const relay = new OutboxRelay(
    db,
    service,
    async (event, message) => {
      await publish(event, message);
      const at = committedAt.get(message.headers[Header.id]!);
      if (at !== undefined) latencies.push(performance.now() - at);
      published++;
    },
    { pollIntervalMs: 100, onError: () => errors++ },
  );
  await relay.start();
  const started = performance.now();
  const until = started + DURATION_MS;
  let n = 0;
  const writer = async () => {
    while (performance.now() < until) {
      const message = outboxMessage(service, n++);
      try {
        await db.transaction((trx) => writeOutbox(trx, service, [message]));
        committedAt.set(message.message.headers[Header.id]!, performance.now());
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, writer));
  await untilRelayed(relay);
  const seconds = (performance.now() - started) / 1000;
  await relay.stop();
  const sorted = Float64Array.from(latencies).sort();
  return {
    name: `relay → NATS, ${CONCURRENCY} writers`,
    events: published,
    seconds,
    eventsPerSec: published / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    ratioToPgbench: Number.NaN,
    errors,
  };
}

async function relayRows(db: Database, suffix: string, pgbenchTps: number): Promise<RelayRow[]> {
  const rows: RelayRow[] = [];
  const backlogRow = (name: string, result: { seconds: number; errors: number }): RelayRow => ({
    name,
    events: BACKLOG,
    seconds: result.seconds,
    eventsPerSec: BACKLOG / result.seconds,
    p50Ms: Number.NaN,
    p99Ms: Number.NaN,
    ratioToPgbench: BACKLOG / result.seconds / pgbenchTps,
    errors: result.errors,
  });

  console.log(`outbox: draining ${BACKLOG.toLocaleString('en-US')} events, publishing to nothing`);
  await backlog(db, 'bench_outbox_null', BACKLOG);
  rows.push(backlogRow('relay → nothing, backlog', await drain(db, 'bench_outbox_null', async () => undefined)));
  console.log(`  ${Math.round(rows.at(-1)!.eventsPerSec).toLocaleString('en-US')} events/s`);

  if (!(await reachable({ name: 'NATS', url: NATS_URL, port: 4222 }))) {
    console.log(`outbox: NATS is not reachable at ${NATS_URL}; the rows that publish to it are left out`);
    return rows;
  }
  const transport: Transport = natsTransport({ url: NATS_URL, nodeId: `bench-${suffix}` });
  await transport.connect();
  const publish: Publish = (event, message) => transport.publish(event, message);
  const services = [`bench_outbox_nats_${suffix}`, `bench_outbox_live_${suffix}`];
  try {
    console.log(`outbox: draining ${BACKLOG.toLocaleString('en-US')} events into NATS JetStream`);
    await backlog(db, services[0]!, BACKLOG);
    rows.push(backlogRow('relay → NATS, backlog', await drain(db, services[0]!, publish)));
    console.log(`  ${Math.round(rows.at(-1)!.eventsPerSec).toLocaleString('en-US')} events/s`);

    console.log(`outbox: ${CONCURRENCY} writers for ${DURATION_MS} ms, one relay publishing to NATS JetStream`);
    const row = await live(db, services[1]!, publish);
    row.ratioToPgbench = row.eventsPerSec / pgbenchTps;
    rows.push(row);
    console.log(
      `  ${Math.round(row.eventsPerSec).toLocaleString('en-US')} events/s, commit → publish p50 ${row.p50Ms.toFixed(1)} ms, p99 ${row.p99Ms.toFixed(1)} ms`,
    );
  } finally {
    await transport.close();
    await purgeBenchEvents(services);
  }
  return rows;
}

/** The benchmark's events would stay in the shared events stream for days: remove them. */
async function purgeBenchEvents(services: string[]): Promise<void> {
  const nc = await natsConnect({ servers: NATS_URL });
  try {
    const jsm = await jetstreamManager(nc);
    for (const service of services) {
      await jsm.streams.purge('CHASSIS_EVENTS', { filter: `evt.${service}.>` }).catch(() => undefined);
    }
  } finally {
    await nc.close();
  }
}

// Main -------------------------------------------------------------------------------------------------

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
    `data: event store appends and outbox relay at concurrency ${CONCURRENCY} (${DURATION_MS} ms each) beside pgbench -N -c ${CONCURRENCY} -T ${PGBENCH_SECONDS}; ${new URL(ADMIN_URL).host}`,
  );
  await admin(`create database ${benchDb}`);
  await admin(`create database ${storeDb}`);
  const rows: Row[] = [];
  const relays: RelayRow[] = [];
  let pgbenchTps = Number.NaN;
  let serverVersion = 'unknown';
  let synchronousCommit = 'unknown';
  try {
    const bench = await pgbench(ADMIN_URL, benchDb, { concurrency: CONCURRENCY, seconds: PGBENCH_SECONDS });
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
      relays.push(...(await relayRows(db, suffix, pgbenchTps)));
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
  console.log('');
  const ms = (value: number) => (Number.isNaN(value) ? '' : value.toFixed(1));
  console.log(
    formatTable([
      ['outbox relay', 'events', 'seconds', 'events/s', 'commit→publish p50 ms', 'p99 ms', 'vs pgbench', 'errors'],
      ...relays.map((r) => [
        r.name,
        r.events.toLocaleString('en-US'),
        r.seconds.toFixed(2),
        Math.round(r.eventsPerSec).toLocaleString('en-US'),
        ms(r.p50Ms),
        ms(r.p99Ms),
        `${r.ratioToPgbench.toFixed(2)}×`,
        String(r.errors),
      ]),
    ]),
  );

  await writeResults('data-postgres', startedAt, {
    server: { host: new URL(ADMIN_URL).host, version: serverVersion, synchronousCommit },
    concurrency: CONCURRENCY,
    warmupMs: WARMUP_MS,
    durationMs: DURATION_MS,
    pgbench: { args: `-N -c ${CONCURRENCY} -j 2 -T ${PGBENCH_SECONDS}`, tps: pgbenchTps },
    results: rows,
    outboxRelay: { backlog: BACKLOG, results: relays },
  });
  return [...rows, ...relays].some((r) => r.errors > 0) ? 1 : 0;
}

process.exitCode = await main();
setTimeout(() => {
  console.error(`still running 5 s after the end; open resources: ${process.getActiveResourcesInfo().join(', ')}`);
  process.exit();
}, 5000).unref();
