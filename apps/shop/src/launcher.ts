import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { postgresTls } from '@chassis/data';
import pg from 'pg';

/** One process of a distributed Shop: which services it hosts, and whether the gateway. */
export interface ProcessSpec {
  name: string;
  /** Comma-separated, as `SERVICES`. */
  services: string;
  /** The gateway's port, for the one process that serves HTTP. */
  port?: number;
}

export interface DistributedOptions {
  /** `amqp://…` (the book's RabbitMQ) or `nats://…`. */
  transport: string;
  /** A PostgreSQL URL; the database is created if it does not exist. */
  databaseUrl: string;
  /** Default 8080. */
  port?: number;
  /** Each process's lines, prefixed with its name; default: to stdout. */
  output?: (line: string) => void;
  logLevel?: string;
  /** More environment for every process (a secret, a rate limit). */
  env?: Readonly<Record<string, string>>;
}

export interface RunningProcess {
  readonly spec: ProcessSpec;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
}

export interface DistributedShop {
  url: string;
  processes: Map<string, RunningProcess>;
  /** SIGKILL, as a crash: no drain, nothing flushed. */
  kill(name: string): Promise<void>;
  /** Starts a process (again) with its spec. */
  start(name: string): Promise<void>;
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

/**
 * The Shop as separate processes: an edge with the gateway and the catalogue side (users, auth,
 * products, reviews, recommendations), two competing orders instances that run the order saga, and
 * payments alone. They share the broker and one PostgreSQL (a schema each).
 */
export function distributedTopology(port = 8080): ProcessSpec[] {
  return [
    { name: 'edge', services: 'shop-users,shop-auth,shop-products,shop-reviews,shop-recommendations', port },
    { name: 'orders-1', services: 'shop-orders' },
    { name: 'orders-2', services: 'shop-orders' },
    { name: 'payments', services: 'shop-payments' },
  ];
}

export async function ensureDatabase(databaseUrl: string): Promise<void> {
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

export async function launchDistributed(options: DistributedOptions): Promise<DistributedShop> {
  const output = options.output ?? ((line: string) => console.log(line));
  const specs = distributedTopology(options.port ?? 8080);
  const edge = specs.find((spec) => spec.port !== undefined)!;
  const url = `http://127.0.0.1:${edge.port}`;
  await ensureDatabase(options.databaseUrl);
  const processes = new Map<string, RunningProcess>();

  const start = async (name: string) => {
    const spec = specs.find((candidate) => candidate.name === name);
    if (!spec) throw new Error(`No process ${name} in the topology`);
    const child = spawn(process.execPath, [MAIN], {
      env: {
        ...process.env,
        ...options.env,
        CHASSIS_TRANSPORT: options.transport,
        DATABASE_URL: options.databaseUrl,
        SERVICES: spec.services,
        PORT: spec.port === undefined ? 'off' : String(spec.port),
        OPS_PORT: 'off',
        NODE_ID: spec.name,
        LOG_LEVEL: options.logLevel ?? 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const prefix = `[${spec.name}]`.padEnd(12);
    for (const stream of [child.stdout, child.stderr]) {
      let buffered = '';
      stream?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) if (line) output(`${prefix} ${line}`);
      });
    }
    const exited = once(child, 'exit').then(() => undefined);
    processes.set(spec.name, { spec, child, exited });
    await waitForReady(child, spec.port === undefined ? undefined : `${url}/health`, spec.name);
  };

  const stop = async () => {
    const running = [...processes.values()];
    for (const { child } of running) child.kill('SIGTERM');
    await Promise.race([
      Promise.all(running.map((p) => p.exited)),
      new Promise((resolve) => setTimeout(resolve, 15_000)),
    ]);
    for (const { child } of running) if (child.exitCode === null) child.kill('SIGKILL');
  };

  try {
    // At once (migrations take a lock per service, so two orders instances apply each file once), the
    // edge last: once its gateway answers, every service it calls has a process to answer.
    await Promise.all(specs.filter((s) => s !== edge).map((spec) => start(spec.name)));
    await start(edge.name);
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    url,
    processes,
    start,
    stop,
    async kill(name) {
      const running = processes.get(name);
      if (!running) throw new Error(`No process ${name}`);
      running.child.kill('SIGKILL');
      await running.exited;
    },
  };
}

/** A process is up when main.ts has printed its first line (the node runs), and its gateway answers. */
async function waitForReady(child: ChildProcess, healthUrl: string | undefined, name: string): Promise<void> {
  const started = new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it started`)));
  });
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`${name} did not start within 60 s`)), 60_000).unref(),
  );
  await Promise.race([started, timeout]);
  if (!healthUrl) return;
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    try {
      const response = await fetch(healthUrl, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${name}'s gateway did not answer at ${healthUrl} within 60 s`);
}
