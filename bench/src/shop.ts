import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { type DistributedShop, launchDistributed } from '@chassis/shop/launcher';
import { freePort, servers } from '@chassis/testing';
import pg from 'pg';
import { benchConcurrencies, benchDurationMs, formatTable, writeResults } from './harness.ts';
import { cpuUsedBetween, readProcessCpu } from './process-cpu.ts';

/**
 * The Shop end to end (`npm run bench:shop`, not a test): its distributed topology — the edge with the
 * gateway, two orders instances, payments — over RabbitMQ and PostgreSQL. Clients in a closed loop
 * place one-item orders through the gateway (`BENCH_CONCURRENCY`, default 4,16, for `BENCH_SECONDS`,
 * default 10); each is accepted (202) once recorded, then confirmed by the saga (order_created through
 * the outbox and RabbitMQ, the charge, the conclusion). Reported: accepted and confirmed orders/s, and
 * CPU per confirmed order by process group — the Shop's processes, PostgreSQL, RabbitMQ.
 * Runs in a database and a RabbitMQ virtual host of its own, both removed afterwards.
 */

const run = promisify(execFile);
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? servers.postgres.url;
const DURATION_MS = benchDurationMs(10);
const CONCURRENCIES = benchConcurrencies('4,16');
const LAMP = '10000000-0000-4000-8000-000000000002';

interface Row {
  concurrency: number;
  accepted: number;
  acceptedPerSec: number;
  confirmedPerSec: number;
  cpuMsPerOrder: Record<string, number>;
  errors: number;
}

async function withDatabase<T>(use: (url: string) => Promise<T>): Promise<T> {
  const name = `shop_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  try {
    return await use(url.toString());
  } finally {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

async function withVhost<T>(use: (url: string) => Promise<T>): Promise<T> {
  const name = `shop-bench-${randomBytes(4).toString('hex')}`;
  await run('rabbitmqctl', ['add_vhost', name]);
  await run('rabbitmqctl', ['set_permissions', '-p', name, 'guest', '.*', '.*', '.*']);
  const url = new URL(servers.rabbitmq.url);
  url.pathname = `/${name}`;
  try {
    return await use(url.toString());
  } finally {
    await run('rabbitmqctl', ['delete_vhost', name]);
  }
}

async function post(url: string, path: string, body: unknown, token?: string) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function measureAt(shop: DistributedShop, db: pg.Client, token: string, concurrency: number): Promise<Row> {
  const pids = new Map([...shop.processes].map(([name, p]) => [p.child.pid, name.replace(/-\d+$/, '')]));
  const groupOf = (pid: number, comm: string) =>
    pids.get(pid) ?? (comm === 'postgres' ? 'postgres' : comm === 'beam.smp' ? 'rabbitmq' : undefined);
  const before = readProcessCpu();
  const startedAt = Date.now();
  let accepted = 0;
  let errors = 0;
  const until = startedAt + DURATION_MS;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        const placed = await post(shop.url, '/api/v1/orders', { items: [{ productId: LAMP, quantity: 1 }] }, token);
        if (placed.status === 202) accepted++;
        else errors++;
      }
    }),
  );
  // Confirmed: every accepted order has left pending; the last conclusion's time ends the window.
  while (
    (await db.query(`select count(*)::int as n from "shop-orders".orders where status = 'pending'`)).rows[0].n > 0
  ) {
    await sleep(100);
  }
  const endedAt = Date.now();
  const after = readProcessCpu();
  const confirmed = (
    await db.query(
      `select count(*)::int as n from "shop-orders".orders where status = 'confirmed' and created_at >= $1`,
      [new Date(startedAt)],
    )
  ).rows[0].n as number;
  const cpu = before && after ? cpuUsedBetween(before, after, groupOf) : {};
  return {
    concurrency,
    accepted,
    acceptedPerSec: accepted / (DURATION_MS / 1000),
    confirmedPerSec: confirmed / ((endedAt - startedAt) / 1000),
    cpuMsPerOrder: Object.fromEntries(
      Object.entries(cpu).map(([group, seconds]) => [group, (seconds * 1000) / Math.max(confirmed, 1)]),
    ),
    errors,
  };
}

const startedAt = new Date();
const rows = await withVhost((transport) =>
  withDatabase(async (databaseUrl) => {
    const shop = await launchDistributed({
      transport,
      databaseUrl,
      port: await freePort(),
      logLevel: 'error',
      env: { RATE_LIMIT_PER_MINUTE: 'off', GRPC_PORT: 'off' },
      output: () => undefined,
    });
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const login = await post(shop.url, '/api/v1/login', { username: 'admin', password: 'admin-password' });
      const token = String(login.body.token);
      const measured: Row[] = [];
      for (const concurrency of CONCURRENCIES) {
        const row = await measureAt(shop, db, token, concurrency);
        measured.push(row);
        console.log(`concurrency ${concurrency}: ${row.confirmedPerSec.toFixed(1)} confirmed orders/s`);
      }
      return measured;
    } finally {
      await db.end();
      await shop.stop();
    }
  }),
);

const groups = [...new Set(rows.flatMap((row) => Object.keys(row.cpuMsPerOrder)))].sort();
console.log(
  `\nThe Shop distributed over RabbitMQ and PostgreSQL, ${DURATION_MS / 1000} s per concurrency: orders/s and CPU ms per confirmed order\n`,
);
console.log(
  formatTable([
    ['concurrency', 'accepted/s', 'confirmed/s', ...groups.map((g) => `${g} ms`), 'total ms', 'errors'],
    ...rows.map((row) => [
      String(row.concurrency),
      row.acceptedPerSec.toFixed(1),
      row.confirmedPerSec.toFixed(1),
      ...groups.map((g) => (row.cpuMsPerOrder[g] ?? 0).toFixed(2)),
      Object.values(row.cpuMsPerOrder)
        .reduce((sum, ms) => sum + ms, 0)
        .toFixed(2),
      String(row.errors),
    ]),
  ]),
);
await writeResults('shop', startedAt, { durationMs: DURATION_MS, rows });
