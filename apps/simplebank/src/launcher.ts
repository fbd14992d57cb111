import { fileURLToPath } from 'node:url';
import { createDatabaseIfMissing } from '@chassis/data';
import { processGroup, type RunningProcess } from '@chassis/testing';
import {
  SIMPLEBANK_COMPILE_CACHE_ENV,
  SIMPLEBANK_MALLOC_ENV,
  SIMPLEBANK_NODE_ARGS,
  simplebankAllocatorEnv,
} from './process-settings.ts';

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
  /** Node.js flags for every SimpleBank process beside `SIMPLEBANK_NODE_ARGS`, e.g. `['--cpu-prof']` to profile them. */
  nodeArgs?: readonly string[];
}

export interface DistributedSimplebank {
  url: string;
  exchangeUrl: string;
  processes: ReadonlyMap<string, RunningProcess>;
  /** SIGKILL, as a crash: no drain, nothing flushed. */
  kill(name: string): Promise<void>;
  /** Starts a process (again) with its spec. */
  start(name: string): Promise<void>;
  stop(): Promise<void>;
}

// What every SimpleBank process runs with; the bench gives its embedded bank the same.
export {
  SIMPLEBANK_COMPILE_CACHE_ENV,
  SIMPLEBANK_EMBEDDED_NODE_ARGS,
  SIMPLEBANK_MALLOC_ENV,
  SIMPLEBANK_NODE_ARGS,
  simplebankAllocatorEnv,
} from './process-settings.ts';

/** The compile cache unless the environment names its own (NODE_DISABLE_COMPILE_CACHE=1 there turns it off). */
const compileCacheEnv = () => (process.env.NODE_COMPILE_CACHE === undefined ? SIMPLEBANK_COMPILE_CACHE_ENV : {});

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

/**
 * Compiles every module the bank's processes load into Node's compile cache, in one short-lived process
 * started as they are (the same flags, the same `--import`), before they start. A `.ts` module the cache
 * does not hold makes Node load its type stripper (amaro) into the process that imports it, and it stays:
 * 15–20 MB more RSS in each of the seven processes on the first start after any change to the code (the
 * edge 154–165 MB against 138–148 with the cache warm). Costs one start of Node that imports the modules
 * (1–3 s on a loaded 2-core machine). Nothing is done when the environment turns the cache off.
 */
async function warmCompileCache(nodeArgs: readonly string[], output: DistributedOptions['output']): Promise<void> {
  if (process.env.NODE_DISABLE_COMPILE_CACHE !== undefined) return;
  const running = await processGroup(output ? { output } : {}).start({
    name: 'compile-cache',
    script: MAIN,
    nodeArgs: [...SIMPLEBANK_NODE_ARGS, ...nodeArgs.filter((arg) => !arg.startsWith('--cpu-prof'))],
    env: { ...compileCacheEnv(), ...SIMPLEBANK_MALLOC_ENV, SIMPLEBANK_COMPILE_ONLY: 'true' },
  });
  await running.exited;
}

export async function launchDistributed(options: DistributedOptions): Promise<DistributedSimplebank> {
  const exchangePort = options.exchangePort ?? 9090;
  const exchangeUrl = `http://127.0.0.1:${exchangePort}`;
  const specs = distributedTopology(options.port ?? 8080);
  const edge = specs.find((spec) => spec.port !== undefined)!;
  const url = `http://127.0.0.1:${edge.port}`;
  await createDatabaseIfMissing(options.databaseUrl);
  await warmCompileCache(options.nodeArgs ?? [], options.output);
  const group = processGroup(options.output ? { output: options.output } : {});
  await group.start({
    name: 'exchange',
    script: EXCHANGE,
    env: { ...compileCacheEnv(), EXCHANGE_PORT: String(exchangePort) },
    ready: { url: `${exchangeUrl}/prices` },
  });

  const start = async (name: string) => {
    const spec = specs.find((candidate) => candidate.name === name);
    if (!spec) throw new Error(`No process ${name} in the topology`);
    const opsPort = options.opsPorts?.[spec.name];
    await group.start({
      name: spec.name,
      script: MAIN,
      // Given flags last: `--max-semi-space-size=64` there overrides ours.
      nodeArgs: [...SIMPLEBANK_NODE_ARGS, ...(options.nodeArgs ?? [])],
      env: {
        ...compileCacheEnv(),
        ...SIMPLEBANK_MALLOC_ENV,
        ...simplebankAllocatorEnv(process.env, 'distributed'),
        CHASSIS_TRANSPORT: options.transport,
        DATABASE_URL: options.databaseUrl,
        SERVICES: spec.services,
        EXCHANGE_URL: exchangeUrl,
        PORT: spec.port === undefined ? 'off' : String(spec.port),
        OPS_PORT: opsPort === undefined ? 'off' : String(opsPort),
        NODE_ID: spec.name,
        LOG_LEVEL: options.logLevel ?? 'warn',
      },
      ...(spec.port === undefined ? {} : { ready: { url: `${url}/health` } }),
    });
  };

  try {
    // The edge last: its gateway answering means every service it calls has a process to answer.
    for (const spec of specs.filter((s) => s !== edge)) await start(spec.name);
    await start(edge.name);
  } catch (error) {
    await group.stop();
    throw error;
  }
  return { url, exchangeUrl, processes: group.processes, start, stop: group.stop, kill: group.kill };
}
