import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Database } from '@chassis/data';
import { launchDistributed } from '@chassis/simplebank/launcher';
import { freePort, servers } from '@chassis/testing';
import pg from 'pg';
import { orderPlacer, SECRET, seedCustomers, terminalCounts } from './simplebank-load.ts';

/**
 * `node bench/src/simplebank-trace.ts`: every SQL statement one SimpleBank order runs, by process.
 * Starts the distributed topology on a fresh database with `log_statement = all`, waits for it to idle,
 * places one sell order (TRACE_ORDERS, default 1; TRACE_IDLE_MS adds an idle wait) and reads the PostgreSQL server log (TRACE_LOG, default
 * Debian's) for what that database's backends ran meanwhile, each backend mapped to the process whose
 * socket it serves. Needs a local server whose log this user can read.
 */
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? servers.postgres.url;
const LOG = process.env.TRACE_LOG ?? '/var/log/postgresql/postgresql-15-main.log';
const ORDERS = Number(process.env.TRACE_ORDERS ?? 1);
const IDLE_MS = Number(process.env.TRACE_IDLE_MS ?? 0);

async function settled(db: Database): Promise<void> {
  for (let i = 0; i < 120; i++) {
    if ((await terminalCounts(db)).open === 0) return;
    await sleep(250);
  }
  throw new Error('Orders still open after 30 s');
}

const dbName = `chassis_trace_${randomBytes(4).toString('hex')}`;
const url = new URL(ADMIN_URL);
url.pathname = `/${dbName}`;
const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
await admin.query(`create database ${dbName}`);
await admin.query(`alter database ${dbName} set log_statement = 'all'`);
process.env.RATE_LIMIT_PER_MINUTE = 'off';
process.env.CHASSIS_JWT_SECRET = SECRET;
const bank = await launchDistributed({
  transport: servers.nats.url,
  databaseUrl: url.toString(),
  port: await freePort(),
  exchangePort: await freePort(),
  output: () => {},
});
const db = await Database.open(url.toString());
try {
  const customers = await seedCustomers(db, 2);
  const place = orderPlacer(bank.url, customers);
  // Warm up: a sell and a buy by each customer, so first-use statements (caches, prepares) are out of the
  // trace, and the traced order (the first customer's next) is a sell; TRACE_ORDERS=2 adds a sell.
  for (let i = 0; i < 4; i++) await place();
  await settled(db);
  await sleep(2000);
  const from = statSync(LOG).size;
  for (let i = 0; i < ORDERS; i++) await place();
  await settled(db);
  await sleep(1500 + IDLE_MS);
  const text = readFileSync(LOG).subarray(from).toString('utf8');
  // Backend pid → process name, through each backend's client port and the node process owning it.
  const { rows } = await admin.query<{ pid: number; client_port: number }>(
    'select pid, client_port from pg_stat_activity where datname = $1',
    [dbName],
  );
  const sockets = execFileSync('ss', ['-tnpH'], { encoding: 'utf8' });
  const nodeOfPort = new Map<number, number>();
  for (const line of sockets.split('\n')) {
    const m = /\S+\s+\d+\s+\d+\s+\S+:(\d+)\s+\S+:5432\s+.*pid=(\d+)/.exec(line);
    if (m) nodeOfPort.set(Number(m[1]), Number(m[2]));
  }
  const nameOfNode = new Map<number, string>();
  for (const [name, running] of bank.processes) if (running.child.pid) nameOfNode.set(running.child.pid, name);
  nameOfNode.set(process.pid, 'trace');
  const nameOfBackend = new Map<number, string>();
  for (const row of rows) {
    const node = nodeOfPort.get(row.client_port);
    nameOfBackend.set(row.pid, (node === undefined ? undefined : nameOfNode.get(node)) ?? `?${row.pid}`);
  }
  const byProcess = new Map<string, { statements: number; transactions: number; lines: string[] }>();
  // One log record per line start; continuation lines of a statement are kept with it.
  const records = text.split(/\n(?=\d{4}-\d\d-\d\d )/);
  for (const record of records) {
    const m = /^\S+ \S+ UTC \[(\d+)\] \S+@(\S+) LOG:\s+(?:statement|execute [^:]*): ([\s\S]*)$/.exec(record);
    if (!m || m[2] !== dbName) continue;
    const name = nameOfBackend.get(Number(m[1])) ?? `?${m[1]}`;
    const entry = byProcess.get(name) ?? { statements: 0, transactions: 0, lines: [] };
    byProcess.set(name, entry);
    const statement = m[3]!.replace(/\s+/g, ' ').trim();
    entry.statements++;
    if (/^(begin|start transaction)/i.test(statement)) entry.transactions++;
    entry.lines.push(`[${m[1]}] ${statement.slice(0, 400)}`);
  }
  let total = 0;
  for (const [name, entry] of [...byProcess].sort()) {
    total += entry.statements;
    console.log(`\n== ${name}: ${entry.statements} statements, ${entry.transactions} begin`);
    for (const line of entry.lines) console.log(`  ${line}`);
  }
  console.log(`\nTotal ${total} statements for ${ORDERS} order(s)`);
} finally {
  await db.close();
  await bank.stop();
  await admin.query(`drop database if exists ${dbName} with (force)`);
  await admin.end();
}
