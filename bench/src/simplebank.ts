import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { signToken } from '@chassis/core';
import { Database, sql } from '@chassis/data';
import { type DistributedSimplebank, distributedTopology, launchDistributed } from '@chassis/simplebank/launcher';
import { freePort, servers } from '@chassis/testing';
import pg from 'pg';
import { benchConcurrencies, benchDurationMs, formatTable, measure, writeResults } from './harness.ts';
import { pgbench } from './pgbench.ts';
import { cpuUsedBetween, readProcessCpu } from './process-cpu.ts';

/**
 * SimpleBank end to end on its distributed topology — separate processes for the edge (gateway),
 * two orders and two market instances, and the ledger with fees — over NATS and PostgreSQL, beside
 * pgbench on the same server in the same run. Clients sell and buy 1 BHP in a closed loop through the
 * gateway; each order is accepted (202) after orders has recorded it and the ledger reserved for it,
 * then completes through the saga: market places it on the exchange simulator, fees charges, the ledger
 * settles. Reported: acceptance latency (p50/p99), accepted orders/s, and completed orders/s — the
 * orders that completed divided by the time from the first acceptance to the last completion.
 */

const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? servers.postgres.url;
const DURATION_MS = benchDurationMs(10);
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10);
const CONCURRENCY = benchConcurrencies('32');
/** The secret the processes verify tokens with: the bench signs its customers' tokens with it. */
const SECRET = 'simplebank-bench-secret-of-at-least-32-characters';

async function withAdmin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const suffix = randomBytes(4).toString('hex');
  const bankDb = `chassis_bench_simplebank_${suffix}`;
  const pgbenchDb = `chassis_bench_pgbench_${suffix}`;
  await withAdmin((c) => c.query(`create database ${pgbenchDb}`));
  process.env.RATE_LIMIT_PER_MINUTE = 'off';
  process.env.CHASSIS_JWT_SECRET = SECRET;
  const errors: string[] = [];
  console.log('SimpleBank: starting the distributed topology (7 processes) over NATS and PostgreSQL …');
  // Every process serves its /metrics, where its database statements and transactions are counted.
  const opsPorts: Record<string, number> = {};
  for (const spec of distributedTopology()) opsPorts[spec.name] = await freePort();
  const bank = await launchDistributed({
    opsPorts,
    transport: process.env.BENCH_NATS_URL ?? servers.nats.url,
    databaseUrl: databaseUrl(bankDb),
    port: await freePort(),
    exchangePort: await freePort(),
    output: (line) => {
      if (/"level":(50|60)|Error/.test(line)) errors.push(line);
    },
  });
  const db = await Database.open(databaseUrl(bankDb));
  const rows: Record<string, unknown>[] = [];
  try {
    // One customer per client, each with an account of their own: customers do not queue on each
    // other's account lock, as many customers would not.
    const customers = await seedCustomers(db, Math.max(...CONCURRENCY));
    let next = 0;
    const placeOrder = async () => {
      const customer = customers[next++ % customers.length]!;
      const path = customer.orders++ % 2 === 0 ? '/shares/sell' : '/shares/buy';
      await post(bank.url, path, { accountId: customer.accountId, symbol: 'BHP', quantity: 1 }, customer.token, 202);
    };
    // Where the CPU goes, per order: Chassis's processes, PostgreSQL, NATS (the exchange simulator stands
    // for the world outside and is left out).
    const groupOf = (pid: number, comm: string) => {
      for (const [name, running] of bank.processes) {
        if (running.child.pid === pid) return name === 'exchange' ? undefined : 'chassis';
      }
      if (comm === 'postgres') return 'postgres';
      if (comm === 'nats-server') return 'nats';
      return undefined;
    };
    for (const concurrency of CONCURRENCY) {
      const before = await terminalCounts(db);
      const usageBefore = await databaseUsage(bank);
      const cpuBefore = readProcessCpu();
      const accepted = await measure('simplebank accept', concurrency, placeOrder, {
        durationMs: DURATION_MS,
        warmupMs: 2000,
      });
      const firstAcceptance = Date.now() - DURATION_MS - 2000;
      // The saga finishes the orders accepted in the window (and the warm-up's).
      let counts = await terminalCounts(db);
      for (let idle = 0; idle < 60 && counts.open > 0; idle++) {
        await sleep(500);
        counts = await terminalCounts(db);
      }
      const lastCompletion = await lastCompletedAt(db);
      const completed = counts.completed - before.completed;
      const cpuAfter = readProcessCpu();
      const usageAfter = await databaseUsage(bank);
      const cpu = cpuBefore && cpuAfter ? cpuUsedBetween(cpuBefore, cpuAfter, groupOf) : {};
      const cpuMsPerOrder = (group: string) => (completed > 0 ? ((cpu[group] ?? 0) * 1000) / completed : Number.NaN);
      const seconds = (lastCompletion - firstAcceptance) / 1000;
      rows.push({
        concurrency,
        acceptedPerSec: accepted.opsPerSec,
        p50Ms: accepted.p50Ms,
        p99Ms: accepted.p99Ms,
        errors: accepted.errors,
        firstError: accepted.firstError,
        completed,
        completedPerSec: completed / seconds,
        stillOpen: counts.open,
        failed: counts.failed - before.failed,
        cpuMsPerOrder: {
          chassis: cpuMsPerOrder('chassis'),
          postgres: cpuMsPerOrder('postgres'),
          nats: cpuMsPerOrder('nats'),
        },
        databasePerOrder: databasePerOrder(usageBefore, usageAfter, completed),
      });
    }
  } finally {
    await db.close();
    await bank.stop();
  }
  const base = await pgbench(ADMIN_URL, pgbenchDb, { concurrency: 4, seconds: PGBENCH_SECONDS });
  await withAdmin(async (c) => {
    await c.query(`drop database if exists ${bankDb} with (force)`);
    await c.query(`drop database if exists ${pgbenchDb} with (force)`);
  });

  const fixed = (n: unknown, digits = 0) => (typeof n === 'number' && Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
  console.log(
    `\nSimpleBank sell/buy orders through the gateway, distributed over NATS + PostgreSQL (${DURATION_MS / 1000} s)`,
  );
  console.log(
    formatTable([
      [
        'clients',
        'accepted/s',
        'p50 ms',
        'p99 ms',
        'completed/s',
        'completed',
        'failed',
        'open',
        'errors',
        'orders : pgbench tx',
        'CPU ms/order: chassis + postgres + nats',
        'SQL statements : transactions /order',
      ],
      ...rows.map((r) => [
        String(r.concurrency),
        fixed(r.acceptedPerSec),
        fixed(r.p50Ms, 1),
        fixed(r.p99Ms, 1),
        fixed(r.completedPerSec),
        String(r.completed),
        String(r.failed),
        String(r.stillOpen),
        String(r.errors),
        // In the time pgbench -N commits this many of its transactions, SimpleBank completes one order.
        `1 : ${fixed(base.tps / (r.completedPerSec as number))}`,
        cpuColumn(r.cpuMsPerOrder as Record<string, number>),
        databaseColumn(r.databasePerOrder as DatabasePerOrder),
      ]),
    ]),
  );
  const last = rows.at(-1)?.databasePerOrder as DatabasePerOrder | undefined;
  if (last) {
    console.log(
      `SQL per completed order by process (statements : transactions): ${Object.entries(last.byProcess)
        .map(([name, u]) => `${name} ${fixed(u.statements, 1)} : ${fixed(u.transactions, 1)}`)
        .join(', ')}. Goal (issue 12): at most 40 : 12 in all.`,
    );
  }
  console.log(`pgbench -N, 4 clients, same server: ${base.tps.toFixed(0)} TPS`);
  const cores = availableParallelism();
  const busiest = rows.at(-1)?.cpuMsPerOrder as Record<string, number> | undefined;
  const perOrder = busiest ? busiest.chassis! + busiest.postgres! + busiest.nats! : Number.NaN;
  if (Number.isFinite(perOrder)) {
    console.log(
      `CPU per completed order ${perOrder.toFixed(1)} ms: at most ~${fixed((cores * 1000) / perOrder)} orders/s on this machine's ${cores} cores, ~${fixed((500 * perOrder) / 1000, 1)} cores for the goal's 500/s.`,
    );
  }
  console.log('Goal (issue 6): at least 500 completed orders/s with p99 acceptance under 100 ms.');
  if (errors.length > 0) console.log(`\nprocess errors (first 5):\n${errors.slice(0, 5).join('\n')}`);
  await writeResults('simplebank', startedAt, { rows, pgbenchTps: base.tps, durationMs: DURATION_MS });
}

interface DatabaseUsageCount {
  statements: number;
  transactions: number;
}

interface DatabasePerOrder extends DatabaseUsageCount {
  byProcess: Record<string, DatabaseUsageCount>;
}

/** Each process's `chassis_db_statements_total` and `chassis_db_transactions_total` (both outcomes). */
async function databaseUsage(bank: DistributedSimplebank): Promise<Map<string, DatabaseUsageCount>> {
  const usage = new Map<string, DatabaseUsageCount>();
  for (const [name, running] of bank.processes) {
    if (!running.opsUrl) continue;
    const text = await (await fetch(`${running.opsUrl}/metrics`)).text();
    const sum = (metric: string) =>
      [...text.matchAll(new RegExp(`^${metric}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
    usage.set(name, {
      statements: sum('chassis_db_statements_total'),
      transactions: sum('chassis_db_transactions_total'),
    });
  }
  return usage;
}

/** Statements and transactions per completed order: in all, and by process (orders-1 and -2 as orders). */
function databasePerOrder(
  before: Map<string, DatabaseUsageCount>,
  after: Map<string, DatabaseUsageCount>,
  completed: number,
): DatabasePerOrder {
  const byProcess: Record<string, DatabaseUsageCount> = {};
  const all = { statements: 0, transactions: 0 };
  for (const [name, end] of after) {
    const start = before.get(name) ?? { statements: 0, transactions: 0 };
    const group = name.replace(/-\d+$/, '');
    const entry = byProcess[group] ?? { statements: 0, transactions: 0 };
    byProcess[group] = entry;
    for (const key of ['statements', 'transactions'] as const) {
      const share = (end[key] - start[key]) / completed;
      entry[key] += share;
      all[key] += share;
    }
  }
  return { ...all, byProcess };
}

function databaseColumn(usage: DatabasePerOrder | undefined): string {
  if (!usage || !Number.isFinite(usage.statements)) return 'n/a';
  return `${usage.statements.toFixed(1)} : ${usage.transactions.toFixed(1)}`;
}

function cpuColumn(ms: Record<string, number> | undefined): string {
  if (!ms || !Number.isFinite(ms.chassis)) return 'n/a';
  const total = ms.chassis! + ms.postgres! + ms.nats!;
  return `${total.toFixed(1)} = ${ms.chassis!.toFixed(1)} + ${ms.postgres!.toFixed(1)} + ${ms.nats!.toFixed(1)}`;
}

async function post(baseUrl: string, path: string, body: unknown, token: string, expected: number) {
  const response = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== expected) throw new Error(`${path} answered ${response.status}: ${text.slice(0, 200)}`);
}

/**
 * Bench customers: an account each with cash and BHP, written into the ledger's tables with their
 * opening entries (double entry holds), and a token for each signed with the processes' secret.
 */
async function seedCustomers(db: Database, count: number) {
  const customers: { accountId: string; token: string; orders: number }[] = [];
  for (let i = 0; i < count; i++) {
    const accountId = String(5000 + i);
    await sql`
      with account as (
        insert into "account-transactions".accounts (id, name, owner, cash_cents)
        values (${accountId}, ${`Bench ${i}`}, ${`bench-${i}`}, 100000000)
      ), position as (
        insert into "account-transactions".positions (account_id, symbol, quantity) values (${accountId}, 'BHP', 1000000)
      )
      insert into "account-transactions".entries (account, asset, amount, kind) values
        (${accountId}, 'CASH', 100000000, 'opening'), ('opening', 'CASH', -100000000, 'opening'),
        (${accountId}, 'BHP', 1000000, 'opening'), ('opening', 'BHP', -1000000, 'opening')`.execute(db.kysely);
    const token = await signToken(SECRET, { sub: `bench-${i}`, roles: ['customer'], accounts: [accountId] });
    customers.push({ accountId, token, orders: 0 });
  }
  return customers;
}

async function terminalCounts(db: Database) {
  const { rows } = await sql<{ completed: number; failed: number; open: number }>`
    select count(*) filter (where status = 'completed')::int as completed,
      count(*) filter (where status in ('failed', 'rejected', 'canceled'))::int as failed,
      (count(*) filter (where status not in ('completed', 'failed', 'rejected', 'canceled'))
        + greatest(0, (select count(*) from orders.chassis_streams) - count(*)))::int as open
    from "customer-orders".order_summaries`.execute(db.kysely);
  return rows[0]!;
}

async function lastCompletedAt(db: Database): Promise<number> {
  const { rows } = await sql<{ at: Date | null }>`
    select max(recorded_at) as at from orders.chassis_events where type = 'OrderCompleted'`.execute(db.kysely);
  return rows[0]?.at ? new Date(rows[0].at).getTime() : Date.now();
}

await main();
