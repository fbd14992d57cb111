import { fileURLToPath } from 'node:url';
import { createDatabaseIfMissing } from '@chassis/data';
import { processGroup, type RunningProcess } from '@chassis/testing';

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

export interface DistributedShop {
  url: string;
  processes: ReadonlyMap<string, RunningProcess>;
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

export async function launchDistributed(options: DistributedOptions): Promise<DistributedShop> {
  const specs = distributedTopology(options.port ?? 8080);
  const edge = specs.find((spec) => spec.port !== undefined)!;
  const url = `http://127.0.0.1:${edge.port}`;
  await createDatabaseIfMissing(options.databaseUrl);
  const group = processGroup(options.output ? { output: options.output } : {});

  const start = async (name: string) => {
    const spec = specs.find((candidate) => candidate.name === name);
    if (!spec) throw new Error(`No process ${name} in the topology`);
    await group.start({
      name: spec.name,
      script: MAIN,
      env: {
        ...options.env,
        CHASSIS_TRANSPORT: options.transport,
        DATABASE_URL: options.databaseUrl,
        SERVICES: spec.services,
        PORT: spec.port === undefined ? 'off' : String(spec.port),
        OPS_PORT: 'off',
        NODE_ID: spec.name,
        LOG_LEVEL: options.logLevel ?? 'warn',
      },
      // main.ts prints its first line once the node runs; the edge is up when its gateway answers.
      ready: spec.port === undefined ? 'first-line' : { url: `${url}/health` },
    });
  };

  try {
    // At once (migrations take a lock per service, so two orders instances apply each file once), the
    // edge last: once its gateway answers, every service it calls has a process to answer.
    await Promise.all(specs.filter((s) => s !== edge).map((spec) => start(spec.name)));
    await start(edge.name);
  } catch (error) {
    await group.stop();
    throw error;
  }
  return { url, processes: group.processes, start, stop: group.stop, kill: group.kill };
}
