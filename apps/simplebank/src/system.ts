import {
  type ChassisNode,
  drainOnSignals,
  EnvironmentFlagProvider,
  envLimit,
  envNumber,
  envPort,
  jwtVerifier,
  runNode,
  tokenSecret,
} from '@chassis/core';
import { type Database, dataExtension } from '@chassis/data';
import type { Gateway } from '@chassis/gateway';
import type { ExchangeSimulator } from '../exchange-simulator/simulator.ts';
import { type SimplebankServicesOptions, simplebankServices } from './services.ts';

/** Used when CHASSIS_JWT_SECRET is not set, outside production only: anyone can read it here. */
const DEVELOPMENT_SECRET = 'simplebank-development-secret-not-for-production';

export interface SimplebankOptions {
  /** The environment (`CHASSIS_TRANSPORT`, `SERVICES`, `DATABASE_URL`, `CHASSIS_JWT_SECRET`, …). */
  env?: Record<string, string | undefined>;
  /** Default `DATABASE_URL`, else `pglite://.data/simplebank`: the embedded default keeps its data. */
  databaseUrl?: string;
  /** The gateway's port (`PORT`, default 8080; 0 picks a free one); `false` (`PORT=off`) runs no gateway here. */
  port?: number | false;
  host?: string;
  /** Drain and exit on SIGTERM and SIGINT: the gateway first, then the node. */
  handleSignals?: boolean;
  /** Service settings (order expiry, the exchange's breaker, …) for tests and tuning. */
  services?: Omit<SimplebankServicesOptions, 'secret' | 'exchangeUrl'>;
}

export interface Simplebank {
  node: ChassisNode;
  gateway: Gateway | undefined;
  /** The gateway's address, e.g. `http://127.0.0.1:8080`. */
  url: string | undefined;
  /** The secret tokens are signed with (for tests that make their own). */
  secret: string;
  /** The database of the services hosted here (tests check the spec's invariants in it). */
  database: Database;
  /** The exchange simulator started in this process when `EXCHANGE_URL` is not set (its knobs for tests). */
  exchange: ExchangeSimulator | undefined;
  stop(): Promise<void>;
}

/**
 * SimpleBank on one node — every service in `SERVICES` (all by default) — with the gateway in front.
 * With nothing configured: the memory transport and PGlite in `.data/simplebank`, the embedded default.
 */
export async function startSimplebank(options: SimplebankOptions = {}): Promise<Simplebank> {
  const env = options.env ?? process.env;
  const secret = tokenSecret(env, DEVELOPMENT_SECRET);
  // Read before anything starts: a bad PORT or limit is a CONFIG error, not a node left running.
  const port = options.port ?? envPort(env, 'PORT', 8080);
  const rateLimit = envLimit(env, 'RATE_LIMIT_PER_MINUTE', 300);
  const verifier = jwtVerifier({ secret });
  // The exchange is outside the system; with none given, a simulator stands in for it in this process.
  // The simulator and the gateway are loaded only where they run: a process of the distributed topology
  // without them (orders, market, the ledger) is spared Fastify and GraphQL — 523 of 1,369 modules;
  // an orders process idled at 135 MB RSS instead of 168.
  const exchange = env.EXCHANGE_URL
    ? undefined
    : await (await import('../exchange-simulator/simulator.ts')).startExchangeSimulator({ port: 0 });
  const exchangeUrl = env.EXCHANGE_URL ?? exchange!.url;
  let node: ChassisNode;
  // Generic plans: every statement of the bank's hot path finds its rows by key (a literal where a partial
  // index's predicate is tested), so a plan made for one order's values serves every order's. Planned
  // once per connection, not five times and for ever where PostgreSQL kept custom plans: 5.3 plans an
  // order became 0.7, and ~4 of the server's ms an order of planning ~1 (16 clients, distributed).
  const data = dataExtension({
    url: options.databaseUrl ?? env.DATABASE_URL ?? 'pglite://.data/simplebank',
    genericPlans: true,
  });
  try {
    node = await runNode({
      services: simplebankServices({
        ...options.services,
        // How long an order may wait for the ledger before it is failed as interrupted (tests shorten it).
        orders: { staleAfterMs: envNumber(env, 'ORDERS_STALE_AFTER_MS'), ...options.services?.orders },
        // Likewise for a payment the ledger has not confirmed crediting.
        payments: { staleAfterMs: envNumber(env, 'PAYMENTS_STALE_AFTER_MS'), ...options.services?.payments },
        secret,
        exchangeUrl,
      }),
      env,
      // Signals are handled below: the gateway stops taking requests before the node drains.
      handleSignals: false,
      identity: verifier,
      // Feature flags (`CHASSIS_FLAG_*`, `CHASSIS_FLAGS_FILE`) from the same environment as the rest.
      flags: new EnvironmentFlagProvider(env),
      extensions: [data],
      ...(env.LOG_LEVEL ? {} : { logLevel: 'warn' as const }),
    });
  } catch (error) {
    await exchange?.close();
    throw error;
  }
  let gateway: Gateway | undefined;
  let url: string | undefined;
  try {
    if (port !== false) {
      const [{ createGateway }, { simplebankApi }, { simplebankGraphql }] = await loadGateway();
      gateway = await createGateway({
        node,
        routes: simplebankApi.routes,
        auth: verifier,
        // Per customer; `RATE_LIMIT_PER_MINUTE=off` turns it off (load tests, a trusted edge in front).
        rateLimit: rateLimit === false ? false : { max: rateLimit },
        register: simplebankGraphql,
        openapi: simplebankApi.openapi,
      });
      url = await gateway.listen({ port, host: options.host ?? env.HOST ?? '127.0.0.1' });
    }
  } catch (error) {
    await node.stop();
    await exchange?.close();
    throw error;
  }
  const stop = async () => {
    // Requests in flight at the gateway finish; new ones are refused; then the node drains its work.
    await gateway?.close();
    await node.stop();
    await exchange?.close();
  };
  if (options.handleSignals) drainOnSignals(node.log, stop);
  return {
    node,
    gateway,
    url,
    secret,
    exchange,
    // Read when asked: a node hosting no service with tables (market data alone) opens no database.
    get database() {
      return data.database;
    },
    stop,
  };
}

/**
 * What only a process that serves the gateway loads: Fastify and the API's routes and GraphQL schema.
 * Also what the launcher's compile-cache warm-up loads (main.ts), so the two cannot drift apart.
 */
export function loadGateway() {
  return Promise.all([import('@chassis/gateway'), import('./gateway.ts'), import('./graphql.ts')]);
}
