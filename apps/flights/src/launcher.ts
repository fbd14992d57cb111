import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/** One process of distributed flight reservations. */
export interface ProcessSpec {
  name: string;
  /** `SERVICES`: of flights, reservations, bff. */
  services: string;
  /** The port of its HTTP API (the BFF's, or the service's own). */
  port: number;
}

export interface DistributedOptions {
  /** `nats://…` (or `amqp://…`). */
  transport: string;
  /** The flights service's database: `mysql://…` (MariaDB), `postgres://…`. */
  databaseUrl: string;
  /** The flights service's schema (on MariaDB, its database); default `flights`. */
  flightsSchema?: string;
  redisUrl: string;
  /** Before every Redis key; default none. */
  redisKeyPrefix?: string;
  /** The BFF's port, default 8080; the services take 8081 and 8082. */
  port?: number;
  flightsPort?: number;
  reservationsPort?: number;
  logLevel?: string;
  /** The BFF's rate limit per caller (`RATE_LIMIT_PER_MINUTE`); default 300, `off` for none. */
  rateLimitPerMinute?: number | 'off';
  /** Each process's lines, prefixed with its name; default: to stdout. */
  output?: (line: string) => void;
}

export interface DistributedFlights {
  url: string;
  flightsUrl: string;
  reservationsUrl: string;
  processes: Map<string, ChildProcess>;
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

/** The book's topology: the flights service, the reservations service and the BFF, a process each. */
export function distributedTopology(options: Pick<DistributedOptions, 'port' | 'flightsPort' | 'reservationsPort'>) {
  return [
    { name: 'flights', services: 'flights', port: options.flightsPort ?? 8081 },
    { name: 'reservations', services: 'reservations', port: options.reservationsPort ?? 8082 },
    { name: 'bff', services: 'bff', port: options.port ?? 8080 },
  ] satisfies ProcessSpec[];
}

export async function launchDistributed(options: DistributedOptions): Promise<DistributedFlights> {
  const output = options.output ?? ((line: string) => console.log(line));
  const specs = distributedTopology(options);
  const processes = new Map<string, ChildProcess>();
  const exits: Promise<unknown>[] = [];
  const stop = async () => {
    for (const child of processes.values()) child.kill('SIGTERM');
    await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, 15_000))]);
    for (const child of processes.values()) if (child.exitCode === null) child.kill('SIGKILL');
  };
  try {
    for (const spec of specs) {
      const child = spawn(process.execPath, [MAIN], {
        env: {
          ...process.env,
          CHASSIS_TRANSPORT: options.transport,
          DATABASE_URL: options.databaseUrl,
          FLIGHTS_SCHEMA: options.flightsSchema ?? '',
          REDIS_URL: options.redisUrl,
          REDIS_KEY_PREFIX: options.redisKeyPrefix ?? '',
          SERVICES: spec.services,
          PORT: spec.name === 'bff' ? String(spec.port) : 'off',
          FLIGHTS_PORT: spec.name === 'flights' ? String(spec.port) : 'off',
          RESERVATIONS_PORT: spec.name === 'reservations' ? String(spec.port) : 'off',
          OPS_PORT: 'off',
          RATE_LIMIT_PER_MINUTE: String(options.rateLimitPerMinute ?? process.env.RATE_LIMIT_PER_MINUTE ?? 300),
          NODE_ID: spec.name,
          LOG_LEVEL: options.logLevel ?? 'warn',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      processes.set(spec.name, child);
      exits.push(once(child, 'exit'));
      const prefix = `[${spec.name}]`.padEnd(15);
      for (const stream of [child.stdout, child.stderr]) {
        let buffered = '';
        stream?.on('data', (chunk: Buffer) => {
          buffered += chunk.toString();
          const lines = buffered.split('\n');
          buffered = lines.pop() ?? '';
          for (const line of lines) if (line) output(`${prefix} ${line}`);
        });
      }
      await waitForHttp(
        `http://127.0.0.1:${spec.port}${spec.name === 'bff' ? '/health/ready' : '/ping'}`,
        spec.name,
        child,
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const [flights, reservations, bff] = specs;
  return {
    url: `http://127.0.0.1:${bff!.port}`,
    flightsUrl: `http://127.0.0.1:${flights!.port}`,
    reservationsUrl: `http://127.0.0.1:${reservations!.port}`,
    processes,
    stop,
  };
}

async function waitForHttp(url: string, what: string, child: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null)
      throw new Error(`${what} exited with code ${child.exitCode} before answering at ${url}`);
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
