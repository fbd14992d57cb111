import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Database, EventStore, installInbox, installOutbox, migrate } from '@chassis/data';
import pg from 'pg';
import { pgbenchConnection, pgbenchPath } from './pgbench.ts';
import { cpuUsedBetween, readMachineTicks, readProcessCpu, stealShareBetween } from './process-cpu.ts';
import { seedCustomers } from './simplebank-load.ts';

/**
 * SimpleBank's floor (issue 12): `simplebank-floor.sql`, one sell order's minimal SQL against the bank's
 * own schema, run by pgbench — the contender every SimpleBank figure is compared with. Reports orders/s
 * (pgbench's TPS: one run of the script is one order) and the CPU per order of PostgreSQL and pgbench.
 */

export const FLOOR_SCRIPT = fileURLToPath(new URL('./simplebank-floor.sql', import.meta.url));
const SERVICES = new URL('../../apps/simplebank/services/', import.meta.url);
/** The services a sell order passes through: the tables the script writes are theirs. */
const ORDER_SERVICES = ['orders', 'account-transactions', 'market', 'fees', 'customer-orders'];

export interface FloorResult {
  clients: number;
  seconds: number;
  ordersPerSec: number;
  /** CPU per order, ms, over the run's steady middle: the database's server processes and pgbench's. */
  cpuMsPerOrder: { postgres: number; pgbench: number; total: number };
  /** Per order, counted from the script: statements (BEGIN and COMMIT aside) and transactions. */
  statements: number;
  transactions: number;
  /** The machine's CPU time its hypervisor gave to others over the same window (see `stealShareBetween`). */
  steal: number;
}

/** The script's statements (BEGIN and COMMIT aside, as the bank's own counters count) and transactions. */
export function scriptShape(text: string): { statements: number; transactions: number } {
  const commands = text
    .split('\n')
    .filter((line) => !/^\s*(--|\\set\b)/.test(line))
    .join('\n')
    .split(/;|\\gset/)
    .map((command) => command.trim().toLowerCase())
    .filter((command) => command !== '');
  return {
    statements: commands.filter((c) => c !== 'begin' && c !== 'commit').length,
    transactions: commands.filter((c) => c === 'begin').length,
  };
}

/**
 * Runs the floor at `clients` for `seconds` on a scratch database of the server at `adminUrl`: SimpleBank's
 * schema built as its services build it at start (migrations, outbox, inbox, the orders event store), an
 * account per client, then `pgbench -M prepared`. The database is dropped afterwards.
 */
export async function runFloor(
  adminUrl: string,
  { clients, seconds, rate }: { clients: number; seconds: number; rate?: number },
): Promise<FloorResult> {
  const name = `chassis_bench_floor_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    const db = await Database.open(url.toString());
    try {
      for (const service of ORDER_SERVICES) {
        await migrate(db, { service, folder: new URL(`${service}/migrations/`, SERVICES) });
        await installOutbox(db, service);
        await installInbox(db, service);
      }
      await new EventStore(db, { service: 'orders' }).install();
      await seedCustomers(db, clients);
    } finally {
      await db.close();
    }
    return { clients, seconds, ...(await pgbenchFloor(admin, url, name, clients, seconds, rate)) };
  } finally {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

async function pgbenchFloor(
  admin: pg.Client,
  url: URL,
  database: string,
  clients: number,
  seconds: number,
  rate: number | undefined,
) {
  const args = ['-n', '-M', 'prepared', '-f', FLOOR_SCRIPT, '-c', String(clients), '-j', '2', '-T', String(seconds)];
  // At a fixed rate (orders/s), as the bank runs: a server's CPU per transaction depends on how many commit
  // together (one WAL flush for all of them), so the floor at full speed flatters it beside a slower bank.
  if (rate !== undefined) args.push('-R', String(rate));
  console.log(`floor: pgbench ${args.join(' ')}`);
  const connection = pgbenchConnection(url.toString());
  const child = spawn(pgbenchPath(), [...args, ...connection.args, database], { env: connection.env });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));

  // CPU is read while pgbench and its backends live (an exited process's CPU leaves /proc), over the run's
  // middle: after the connections, before the end. The server is shared (other databases, other runs):
  // only this database's backends and the server's own processes (WAL writer, checkpointer, …) count.
  const lead = Math.min(1, seconds * 0.2);
  await sleep(lead * 1000);
  const { rows } = await admin.query<{ pid: number }>(
    'select pid from pg_stat_activity where pid <> pg_backend_pid() and (datname = $1 or datname is null)',
    [database],
  );
  const ours = new Set(rows.map((row) => row.pid));
  const groupOf = (pid: number) => (pid === child.pid ? 'pgbench' : ours.has(pid) ? 'postgres' : undefined);
  const before = readProcessCpu();
  const ticksBefore = readMachineTicks();
  const from = performance.now();
  await sleep((seconds - lead - Math.min(0.5, seconds * 0.1)) * 1000);
  const after = readProcessCpu();
  const steal = stealShareBetween(ticksBefore, readMachineTicks());
  const windowSeconds = (performance.now() - from) / 1000;
  const cpu = before && after ? cpuUsedBetween(before, after, groupOf) : {};

  const code = await exited;
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(output)?.[1];
  if (code !== 0 || !tps) throw new Error(`pgbench (floor) exited ${code}:\n${output.slice(-2000)}`);
  const ordersPerSec = Number(tps);
  const msPerOrder = (group: string) => ((cpu[group] ?? Number.NaN) * 1000) / windowSeconds / ordersPerSec;
  const postgres = msPerOrder('postgres');
  const pgbench = msPerOrder('pgbench');
  return {
    ordersPerSec,
    cpuMsPerOrder: { postgres, pgbench, total: postgres + pgbench },
    steal,
    ...scriptShape(readFileSync(FLOOR_SCRIPT, 'utf8')),
  };
}
