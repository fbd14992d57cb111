import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { type AddressInfo, createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * The local servers tests talk to, how to tell whether one is up, and how to restart it for real.
 *
 * Rule: a test that needs a server skips with a visible reason when it is unreachable, and fails instead
 * when `CHASSIS_REQUIRE_INFRA=1` (CI sets it after making sure the servers are up).
 */

const run = promisify(execFile);

export interface Server {
  readonly name: string;
  readonly url: string;
  readonly port: number;
}

export const servers = {
  nats: { name: 'NATS', url: process.env.CHASSIS_TEST_NATS_URL ?? 'nats://127.0.0.1:4222', port: 4222 },
  rabbitmq: {
    name: 'RabbitMQ',
    url: process.env.CHASSIS_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
    port: 5672,
  },
  postgres: {
    name: 'PostgreSQL',
    url: process.env.CHASSIS_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    port: 5432,
  },
  mariadb: {
    name: 'MariaDB',
    url: process.env.CHASSIS_TEST_MARIADB_URL ?? 'mysql://root@127.0.0.1:3306/',
    port: 3306,
  },
  redis: { name: 'Redis', url: process.env.CHASSIS_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', port: 6379 },
} as const satisfies Record<string, Server>;

export type ServerName = keyof typeof servers;

/** `CHASSIS_REQUIRE_INFRA` is `1` or `0` (or unset): another value, e.g. `true`, would let tests skip unseen. */
export function infraRequired(): boolean {
  const raw = process.env.CHASSIS_REQUIRE_INFRA;
  if (raw === undefined || raw === '' || raw === '0') return false;
  if (raw === '1') return true;
  throw new TypeError(`CHASSIS_REQUIRE_INFRA is 1 (a missing server fails the run) or 0, not "${raw}"`);
}

function hostOf(url: string): string {
  return new URL(url).hostname || '127.0.0.1';
}

/** Whether a TCP connection to the server opens within `timeoutMs`. */
export function reachable(server: Server, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: hostOf(server.url), port: Number(new URL(server.url).port || server.port) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * For `describe(name, { skip: await skipUnlessUp('nats') }, ...)`: `false` when the server is up, a
 * reason to skip when it is down, and a thrown error when it is down but `CHASSIS_REQUIRE_INFRA=1`.
 */
export async function skipUnlessUp(name: ServerName): Promise<false | string> {
  const required = infraRequired(); // a bad value fails here, not only on the day a server is down
  const server = servers[name];
  if (await reachable(server)) return false;
  const reason = `${server.name} is not reachable at ${server.url}; start it to run these tests`;
  if (required) throw new Error(`CHASSIS_REQUIRE_INFRA=1 but ${reason}`);
  return reason;
}

/** Like `skipUnlessUp`, for a program the tests run (e.g. `prometheus`): is it on the PATH? */
export function skipUnlessInstalled(command: string, hint: string): false | string {
  const required = infraRequired();
  const found = (process.env.PATH ?? '').split(':').some((dir) => dir && existsSync(join(dir, command)));
  if (found) return false;
  const reason = `${command} is not installed (${hint})`;
  if (required) throw new Error(`CHASSIS_REQUIRE_INFRA=1 but ${reason}`);
  return reason;
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function waitUntil(
  check: () => Promise<boolean> | boolean,
  { timeoutMs = 30_000, intervalMs = 100, what = 'condition' } = {},
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}

const NATS_START = [
  '--start',
  '--oknodo',
  '--background',
  '--exec',
  '/usr/sbin/nats-server',
  '--',
  '-a',
  '127.0.0.1',
  '-p',
  '4222',
  '-js',
  '-sd',
  '/var/lib/nats-server',
  '-l',
  '/var/log/nats-server.log',
];

/**
 * Stops the local nats-server process and starts it again with the machine's own command line
 * (JetStream state on disk survives). `downMs` keeps it down a while so clients see the outage.
 */
export async function restartNats({ downMs = 500 } = {}): Promise<void> {
  await run('pkill', ['-TERM', '-x', 'nats-server']).catch(() => undefined);
  await waitUntil(async () => !(await reachable(servers.nats, 200)), { what: 'nats-server to stop' });
  await new Promise((r) => setTimeout(r, downMs));
  await run('start-stop-daemon', NATS_START);
  await waitUntil(() => reachable(servers.nats, 200), { what: 'nats-server to start' });
}

/**
 * Stops the local PostgreSQL cluster with a fast shutdown (every connection is cut, transactions in
 * flight roll back) and starts it again, with the machine's own command (`pg_ctlcluster`).
 */
export async function restartPostgres({ downMs = 500 } = {}): Promise<void> {
  const [version] = readdirSync('/etc/postgresql');
  if (!version) throw new Error('No PostgreSQL cluster under /etc/postgresql to restart');
  const cluster = ['--skip-systemctl-redirect', version, 'main'];
  await run('pg_ctlcluster', [...cluster, 'stop', '-m', 'fast']);
  await new Promise((r) => setTimeout(r, downMs));
  await run('pg_ctlcluster', [...cluster, 'start']);
  await waitUntil(() => reachable(servers.postgres, 200), { what: 'PostgreSQL to accept connections' });
}

/**
 * Restarts the RabbitMQ broker application inside its running Erlang node (`rabbitmqctl stop_app` then
 * `start_app`): every connection drops and durable queues are recovered from disk, as in a restart.
 */
export async function restartRabbitmq({ downMs = 500 } = {}): Promise<void> {
  await run('rabbitmqctl', ['stop_app']);
  await new Promise((r) => setTimeout(r, downMs));
  await run('rabbitmqctl', ['start_app']);
  await waitUntil(() => reachable(servers.rabbitmq, 200), { what: 'RabbitMQ to accept connections' });
}
