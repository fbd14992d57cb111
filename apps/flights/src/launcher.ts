import { fileURLToPath } from 'node:url';
import { processGroup, type RunningProcess } from '@chassis/testing';

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
  processes: ReadonlyMap<string, RunningProcess>;
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
  const specs = distributedTopology(options);
  const group = processGroup(options.output ? { output: options.output } : {});
  try {
    for (const spec of specs) {
      await group.start({
        name: spec.name,
        script: MAIN,
        env: {
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
        ready: { url: `http://127.0.0.1:${spec.port}${spec.name === 'bff' ? '/health/ready' : '/ping'}` },
      });
    }
  } catch (error) {
    await group.stop();
    throw error;
  }
  const [flights, reservations, bff] = specs;
  return {
    url: `http://127.0.0.1:${bff!.port}`,
    flightsUrl: `http://127.0.0.1:${flights!.port}`,
    reservationsUrl: `http://127.0.0.1:${reservations!.port}`,
    processes: group.processes,
    stop: group.stop,
  };
}
