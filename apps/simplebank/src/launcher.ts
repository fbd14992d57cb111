import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { postgresTls } from '@chassis/data';
import pg from 'pg';

/** One process of a distributed SimpleBank: which services it hosts, and whether the gateway. */
export interface ProcessSpec {
  name: string;
  /** Comma-separated, as `SERVICES`; empty for the exchange simulator. */
  services: string;
  /** The gateway's port, for the one process that serves HTTP. */
  port?: number;
}

export interface DistributedOptions {
  /** `nats://…` or `amqp://…`. */
  transport: string;
  /** A PostgreSQL URL; the database is created if it does not exist. */
  databaseUrl: string;
  /** Default 8080. */
  port?: number;
  /** Default 9090. */
  exchangePort?: number;
  /** Each process's lines, prefixed with its name; default: to stdout. */
  output?: (line: string) => void;
  logLevel?: string;
  /** Ops ports (`/metrics`, `/health/*`) by process name; a process not named serves none. */
  opsPorts?: Readonly<Record<string, number>>;
  /** Node.js flags for every SimpleBank process, e.g. `['--cpu-prof']` to profile them. */
  nodeArgs?: readonly string[];
}

export interface RunningProcess {
  readonly spec: ProcessSpec;
  readonly child: ChildProcess;
  /** Its `/metrics` and `/health/*`, when `opsPorts` gave it a port. */
  readonly opsUrl: string | undefined;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
}

export interface DistributedSimplebank {
  url: string;
  exchangeUrl: string;
  processes: Map<string, RunningProcess>;
  /** SIGKILL, as a crash: no drain, nothing flushed. */
  kill(name: string): Promise<void>;
  /** Starts a process (again) with its spec. */
  start(name: string): Promise<void>;
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
const EXCHANGE = fileURLToPath(new URL('../exchange-simulator/main.ts', import.meta.url));

/**
 * The distributed topology of specs/simplebank.md as separate processes on one machine: the exchange
 * simulator, two instances each of orders and market, the ledger with fees, and an edge process with
 * the gateway and every other service. They share the broker and one PostgreSQL (a schema each).
 */
export function distributedTopology(port = 8080): ProcessSpec[] {
  return [
    {
      name: 'edge',
      services:
        'identity,market-data,customer-orders,holdings,payments,notifications,alerts,investment-strategies,place-strategy-orders',
      port,
    },
    { name: 'orders-1', services: 'orders' },
    { name: 'orders-2', services: 'orders' },
    { name: 'market-1', services: 'market' },
    { name: 'market-2', services: 'market' },
    { name: 'ledger', services: 'account-transactions,fees' },
  ];
}

export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = '/postgres';
  // The same TLS as the services' own connections (sslmode, sslrootcert… read as libpq reads them).
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

export async function launchDistributed(options: DistributedOptions): Promise<DistributedSimplebank> {
  const output = options.output ?? ((line: string) => console.log(line));
  const exchangePort = options.exchangePort ?? 9090;
  const exchangeUrl = `http://127.0.0.1:${exchangePort}`;
  const specs = distributedTopology(options.port ?? 8080);
  const edge = specs.find((spec) => spec.port !== undefined)!;
  const url = `http://127.0.0.1:${edge.port}`;
  await ensureDatabase(options.databaseUrl);
  const processes = new Map<string, RunningProcess>();

  const spawnProcess = (spec: ProcessSpec, script: string, env: Record<string, string>, opsPort?: number) => {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script], {
      env: { ...process.env, ...env },
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
    const opsUrl = opsPort === undefined ? undefined : `http://127.0.0.1:${opsPort}`;
    processes.set(spec.name, { spec, child, exited, opsUrl });
  };

  const exchangeSpec = { name: 'exchange', services: '' };
  spawnProcess(exchangeSpec, EXCHANGE, { EXCHANGE_PORT: String(exchangePort) });
  await waitForHttp(`${exchangeUrl}/prices`, 'the exchange simulator');

  const start = async (name: string) => {
    const spec = specs.find((candidate) => candidate.name === name);
    if (!spec) throw new Error(`No process ${name} in the topology`);
    const opsPort = options.opsPorts?.[spec.name];
    spawnProcess(
      spec,
      MAIN,
      {
        CHASSIS_TRANSPORT: options.transport,
        DATABASE_URL: options.databaseUrl,
        SERVICES: spec.services,
        EXCHANGE_URL: exchangeUrl,
        PORT: spec.port === undefined ? 'off' : String(spec.port),
        OPS_PORT: opsPort === undefined ? 'off' : String(opsPort),
        NODE_ID: spec.name,
        LOG_LEVEL: options.logLevel ?? 'warn',
      },
      opsPort,
    );
    if (spec.port !== undefined) await waitForHttp(`${url}/health`, 'the gateway');
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
    // The edge last: its gateway answering means every service it calls has a process to answer.
    for (const spec of specs.filter((s) => s !== edge)) await start(spec.name);
    await start(edge.name);
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    url,
    exchangeUrl,
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

async function waitForHttp(url: string, what: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} did not answer at ${url} within ${timeoutMs / 1000} s`);
}
