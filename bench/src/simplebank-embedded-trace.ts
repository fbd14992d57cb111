import fs, { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from '@chassis/data';
import { startSimplebank } from '@chassis/simplebank/system';
import { PGlite } from '@electric-sql/pglite';
import { PglitePreparedStatements } from '../../packages/data/src/pglite-prepared.ts';
import { preparedStatementName } from '../../packages/data/src/prepared-statements.ts';
import { orderPlacer, SECRET, seedCustomers, terminalCounts } from './simplebank-load.ts';

/**
 * `node bench/src/simplebank-embedded-trace.ts`: what the embedded SimpleBank (one process, PGlite) asks
 * of its database for orders placed one after another (TRACE_ORDERS, default 4, after 4 to warm up): every
 * statement Kysely sent, in order, with the calls into PGlite it took (`execProtocolStream`, `exec`,
 * `query`), and the counts per order. The bench's `SQL statements : transactions` count what the data kit
 * sent; this says which they were.
 */
const ORDERS = Number(process.env.TRACE_ORDERS ?? 4);
/** Customers placing at once, each its orders one after another (the bench's clients). */
const CLIENTS = Number(process.env.TRACE_CLIENTS ?? 1);

/** Calls into PGlite, by method; each is at least one pass of its WebAssembly main loop. */
const calls = { execProtocolStream: 0, exec: 0, query: 0 };
const proto = PGlite.prototype as unknown as Record<keyof typeof calls, (...args: unknown[]) => unknown>;
for (const method of Object.keys(calls) as (keyof typeof calls)[]) {
  const original = proto[method];
  proto[method] = function (this: unknown, ...args: unknown[]) {
    calls[method]++;
    return original.apply(this, args);
  };
}

/** File system calls PGlite makes (its folder: WAL, data files), by kind, and the bytes written. */
const files = { writeSync: 0, readSync: 0, bytesWritten: 0, bytesRead: 0 };
for (const method of ['writeSync', 'readSync'] as const) {
  const original = fs[method] as (...args: unknown[]) => number;
  (fs as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
    const n = original(...args);
    if (tracing) {
      files[method]++;
      if (method === 'writeSync') files.bytesWritten += n;
      else files.bytesRead += n;
    }
    return n;
  };
}

/**
 * The CPU each `execProtocolStream` call took in this thread, by the statements it bound (their names):
 * PGlite runs the messages synchronously, before the call returns its promise.
 */
const cpuByCall = new Map<string, { calls: number; us: number; wallUs: number }>();
const threadCpu = (process as unknown as { threadCpuUsage(): { user: number; system: number } }).threadCpuUsage;
const stream = proto.execProtocolStream;
proto.execProtocolStream = function (this: unknown, ...args: unknown[]) {
  if (!tracing) return stream.apply(this, args);
  const t0 = threadCpu.call(process);
  const w0 = performance.now();
  const result = stream.apply(this, args);
  const w1 = performance.now();
  const t1 = threadCpu.call(process);
  const key = boundNames(args[0] as Uint8Array)
    .map((name) => textOfName.get(name) ?? name)
    .join(' + ');
  const entry = cpuByCall.get(key) ?? { calls: 0, us: 0, wallUs: 0 };
  entry.calls++;
  entry.wallUs += (w1 - w0) * 1000;
  entry.us += t1.user + t1.system - t0.user - t0.system;
  cpuByCall.set(key, entry);
  return result;
};

/** The statement names of the Bind messages in `message` (Parse's, for a preparation). */
function boundNames(message: Uint8Array): string[] {
  const names: string[] = [];
  const view = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  for (let at = 0; at + 5 <= view.length; ) {
    const type = String.fromCharCode(view[at]!);
    const length = view.readInt32BE(at + 1);
    if (type === 'B') {
      const portalEnd = view.indexOf(0, at + 5);
      names.push(view.toString('utf8', portalEnd + 1, view.indexOf(0, portalEnd + 1)));
    } else if (type === 'P') {
      names.push(`parse ${view.toString('utf8', at + 5, view.indexOf(0, at + 5))}`);
    }
    at += 1 + length;
  }
  return names;
}

/** Prepared statement name → a short form of its text. */
const textOfName = new Map<string, string>([
  ['chassis_begin', 'BEGIN'],
  ['chassis_commit', 'COMMIT'],
  ['chassis_rollback', 'ROLLBACK'],
]);

/** Every statement the one connection is sent while `tracing`: with parameters or transaction control, then the rest. */
const lines: string[] = [];
let tracing = false;
const see = (text: string, parameters: readonly unknown[]) => {
  if (tracing) lines.push(`${text.replace(/\s+/g, ' ').slice(0, 300)}  ${JSON.stringify(parameters).slice(0, 100)}`);
};
const statements = PglitePreparedStatements.prototype as unknown as {
  query(text: string, p: unknown[], c?: boolean): unknown;
};
const query = statements.query;
/** Wall time in each statement's call, by its text: with one client, what PGlite spent on it. */
const timeByText = new Map<string, number>();
statements.query = function (this: unknown, text: string, parameters: unknown[], commits?: boolean) {
  const shown = commits ? `${text}  [carries COMMIT]` : text;
  see(shown, parameters);
  const name = preparedStatementName(text);
  if (name) textOfName.set(name, text.replace(/\s+/g, ' ').trim().slice(0, 110));
  const started = performance.now();
  const result = query.call(this, text, parameters, commits) as Promise<unknown>;
  if (!tracing) return result;
  const key = shown.replace(/\s+/g, ' ').slice(0, 160);
  return result.finally(() => timeByText.set(key, (timeByText.get(key) ?? 0) + performance.now() - started));
};
const exec = proto.exec;
proto.exec = function (this: unknown, ...args: unknown[]) {
  see(`(exec) ${String(args[0])}`, []);
  return exec.apply(this, args);
};

async function settled(db: Database): Promise<void> {
  for (let i = 0; i < 120; i++) {
    if ((await terminalCounts(db)).open === 0) return;
    await sleep(100);
  }
  throw new Error('Orders still open after 12 s');
}

const folder = mkdtempSync(join(tmpdir(), 'simplebank-trace-'));
const bank = await startSimplebank({
  databaseUrl: `pglite://${folder}`,
  port: 0,
  env: { LOG_LEVEL: 'error', ...process.env, RATE_LIMIT_PER_MINUTE: 'off', CHASSIS_JWT_SECRET: SECRET },
});
try {
  const customers = await seedCustomers(bank.database, Math.max(2, CLIENTS));
  const place = orderPlacer(bank.url!, customers);
  for (let i = 0; i < 4 * CLIENTS; i++) await place();
  await settled(bank.database);
  await sleep(1500);
  const before = { ...calls, ...bank.database.usage };
  tracing = true;
  let left = ORDERS;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (left-- > 0) await place();
    }),
  );
  await settled(bank.database);
  await sleep(1500);
  tracing = false;
  const usage = bank.database.usage;
  const per = (n: number) => (n / ORDERS).toFixed(1);
  if (process.env.TRACE_ALL) for (const line of lines) console.log(line);
  // By statement (its text without the parameters), how many an order.
  const byText = new Map<string, number>();
  for (const line of lines) {
    const text = line.split('  [')[0]!.slice(0, 160);
    byText.set(text, (byText.get(text) ?? 0) + 1);
  }
  for (const [text, n] of [...byText].sort((a, b) => b[1] - a[1])) {
    const ms = timeByText.get(text);
    console.log(
      `${per(n).padStart(5)} ${ms === undefined ? '      ' : (ms / ORDERS).toFixed(2).padStart(6)}ms  ${text}`,
    );
  }
  console.log(
    '\nCalls into PGlite (execProtocolStream) by what they bound: per order; µs an order of thread CPU (tick-sampled) and of wall time in the call',
  );
  let cpuTotal = 0;
  let wallTotal = 0;
  for (const [key, { calls: n, us, wallUs }] of [...cpuByCall].sort((a, b) => b[1].wallUs - a[1].wallUs)) {
    cpuTotal += us;
    wallTotal += wallUs;
    console.log(
      `${per(n).padStart(5)} ${(us / ORDERS).toFixed(0).padStart(6)} ${(wallUs / ORDERS).toFixed(0).padStart(6)}  ${key}`,
    );
  }
  console.log(
    `total ${(cpuTotal / ORDERS / 1000).toFixed(2)} ms of CPU, ${(wallTotal / ORDERS / 1000).toFixed(2)} ms wall, in PGlite calls an order`,
  );
  console.log(
    `file system an order: ${per(files.writeSync)} writes (${per(files.bytesWritten / 1024)} kB), ${per(files.readSync)} reads (${per(files.bytesRead / 1024)} kB)`,
  );
  console.log(
    `\nper order: ${per(usage.statements - before.statements)} statements, ${per(usage.commits - before.commits)} commits, ${per(usage.rollbacks - before.rollbacks)} rollbacks; ` +
      `PGlite calls ${per(calls.execProtocolStream - before.execProtocolStream)} execProtocolStream + ${per(calls.exec - before.exec)} exec + ${per(calls.query - before.query)} query`,
  );
} finally {
  await bank.stop();
  rmSync(folder, { recursive: true, force: true });
}
