import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { postgresTls } from '@chassis/data';
import pg from 'pg';
import { processGroups } from './topology.ts';

/**
 * `npm run start:newsportal:distributed`: the News portal as one process per service group on this
 * machine, over NATS (`CHASSIS_TRANSPORT`, default nats://127.0.0.1:4222) and PostgreSQL (`DATABASE_URL`,
 * default postgres://postgres@127.0.0.1:5432/newsportal, created if missing), sharing the Redis at
 * `REDIS_URL`. The edge process serves the gateway on `PORT` (8080). Ctrl-C stops them all.
 */

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = '/postgres';
  const tls = postgresTls(url.toString());
  const admin = new pg.Client({ connectionString: tls.connectionString, ssl: tls.ssl });
  await admin.connect();
  try {
    const exists = await admin.query('select 1 from pg_database where datname = $1', [name]);
    if (exists.rowCount === 0) await admin.query(`create database "${name.replaceAll('"', '""')}"`);
  } finally {
    await admin.end();
  }
}

async function waitForHttp(url: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(1000) })).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`The gateway did not answer at ${url} within ${timeoutMs / 1000} s`);
}

const transport = process.env.CHASSIS_TRANSPORT ?? 'nats://127.0.0.1:4222';
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/newsportal';
const port = Number(process.env.PORT ?? 8080);
console.log(`Starting the News portal distributed over ${transport} and ${databaseUrl} …`);
await ensureDatabase(databaseUrl);

const children: { name: string; child: ChildProcess }[] = [];
const startGroup = async (group: (typeof processGroups)[number]) => {
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      CHASSIS_TRANSPORT: transport,
      DATABASE_URL: databaseUrl,
      SERVICES: group.services,
      PORT: group.gateway ? String(port) : 'off',
      OPS_PORT: 'off',
      NODE_ID: group.name,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = `[${group.name}]`.padEnd(16);
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) if (line) console.log(`${prefix} ${line}`);
    });
  }
  children.push({ name: group.name, child });
  // One after another: each migrates its own schemas before the next starts.
  if (group.gateway) await waitForHttp(`http://127.0.0.1:${port}/v1/users/healthcheck`);
  else await Promise.race([once(child.stdout!, 'data'), once(child, 'exit')]);
};

const stop = async () => {
  for (const { child } of children) child.kill('SIGTERM');
  await Promise.race([
    Promise.all(children.map(({ child }) => (child.exitCode === null ? once(child, 'exit') : undefined))),
    new Promise((resolve) => setTimeout(resolve, 15_000)),
  ]);
  for (const { child } of children) if (child.exitCode === null) child.kill('SIGKILL');
};
process.once('SIGINT', () => stop().then(() => process.exit(0)));
process.once('SIGTERM', () => stop().then(() => process.exit(0)));

try {
  // The edge last: its gateway answering means every service it calls has a process to answer.
  for (const group of processGroups.filter((g) => !g.gateway)) await startGroup(group);
  for (const group of processGroups.filter((g) => g.gateway)) await startGroup(group);
} catch (error) {
  await stop();
  throw error;
}
console.log(`The News portal is up: API http://127.0.0.1:${port} (docs http://127.0.0.1:${port}/docs)`);
console.log(`Processes: ${children.map((c) => c.name).join(', ')}. Ctrl-C stops them all.`);
