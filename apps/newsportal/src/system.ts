import { type ChassisNode, drainOnSignals, envPort, type NodeExtension, runNode } from '@chassis/core';
import { type Database, dataExtension } from '@chassis/data';
import { createGateway, type Gateway } from '@chassis/gateway';
import { fetchUserOverGrpc, userDataClient, userDataServer } from '../services/users/grpc.ts';
import { UsersMetrics } from '../services/users/metrics.ts';
import { newsportalApi } from './gateway.ts';
import { type NewsportalServicesOptions, newsportalServices } from './services.ts';

export interface NewsportalOptions {
  /** The environment (`CHASSIS_TRANSPORT`, `SERVICES`, `DATABASE_URL`, `REDIS_URL`, `PORT`, …). */
  env?: Record<string, string | undefined>;
  /** Default `DATABASE_URL`, else `pglite://.data/newsportal`. */
  databaseUrl?: string;
  /** The gateway's port (`PORT`, default 8080; 0 picks one); `false` (`PORT=off`) runs no gateway here. */
  port?: number | false;
  host?: string;
  /** Drain and exit on SIGTERM and SIGINT: the gateway first, then the node. */
  handleSignals?: boolean;
  /** Service settings for tests and tuning (Redis's key prefix, the workers' lease, …). */
  services?: Partial<Omit<NewsportalServicesOptions, 'users'>> & {
    users?: Partial<NewsportalServicesOptions['users']>;
  };
}

export interface Newsportal {
  node: ChassisNode;
  gateway: Gateway | undefined;
  /** The gateway's address, e.g. `http://127.0.0.1:8080`. */
  url: string | undefined;
  /** The port users' gRPC `GetUserData` listens on, when this node hosts users. */
  grpcPort: number | undefined;
  /** The database of the services hosted here. */
  database: Database;
  stop(): Promise<void>;
}

/**
 * The News portal on one node — every service in `SERVICES` (all by default) — with the gateway in
 * front. With nothing configured: the memory transport, PGlite in `.data/newsportal` and the local Redis.
 */
export async function startNewsportal(options: NewsportalOptions = {}): Promise<Newsportal> {
  const env = options.env ?? process.env;
  // Read before anything starts: a bad PORT is a CONFIG error, not a node left running.
  const port = options.port ?? envPort(env, 'PORT', 8080);
  const data = dataExtension({ url: options.databaseUrl ?? env.DATABASE_URL ?? 'pglite://.data/newsportal' });
  const hosted = (env.SERVICES ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const hosts = (service: string) => hosted.length === 0 || hosted.includes(service);
  const extensions: NodeExtension[] = [data];
  // Users serves GetUserData on GRPC_PORT (default 50051; 0 picks one; `off` none).
  const grpcPort = envPort(env, 'GRPC_PORT', 50051);
  const server =
    hosts('users') && grpcPort !== false
      ? userDataServer({ port: grpcPort, host: env.GRPC_HOST || '127.0.0.1' })
      : undefined;
  if (server) extensions.push(server);
  // Recommendations look readers up over gRPC at USERS_GRPC_ADDRESS (default: this node's server, or
  // 127.0.0.1:GRPC_PORT); `off` asks users over the bus instead.
  let fetchUser: NonNullable<NewsportalServicesOptions['recommendation']>['fetchUser'];
  if (hosts('recommendation') && env.USERS_GRPC_ADDRESS !== 'off') {
    const address = env.USERS_GRPC_ADDRESS || (server ? () => server.address! : `127.0.0.1:${grpcPort || 50051}`);
    const client = userDataClient(address);
    extensions.push(client);
    fetchUser = fetchUserOverGrpc(client);
  }
  // Users' cache and write-queue metrics on this node's /metrics (the News portal dashboard reads them).
  const usersMetrics = hosts('users') ? new UsersMetrics() : undefined;
  if (usersMetrics) extensions.push(usersMetrics);
  const node = await runNode({
    services: newsportalServices({
      ...options.services,
      recommendation: { ...(fetchUser ? { fetchUser } : {}), ...options.services?.recommendation },
      users: {
        url: env.REDIS_URL || 'redis://127.0.0.1:6379',
        keyPrefix: env.REDIS_KEY_PREFIX ?? 'newsportal:',
        ...(usersMetrics ? { metrics: usersMetrics } : {}),
        ...options.services?.users,
      },
    }),
    env,
    handleSignals: false,
    extensions,
    ...(env.LOG_LEVEL ? {} : { logLevel: 'warn' as const }),
  });
  let gateway: Gateway | undefined;
  let url: string | undefined;
  try {
    if (port !== false) {
      gateway = await createGateway({
        node,
        routes: newsportalApi.routes,
        rateLimit: false,
        openapi: newsportalApi.openapi,
      });
      url = await gateway.listen({ port, host: options.host ?? env.HOST ?? '127.0.0.1' });
    }
  } catch (error) {
    await node.stop();
    throw error;
  }
  const stop = async () => {
    await gateway?.close();
    await node.stop();
  };
  if (options.handleSignals) drainOnSignals(node.log, stop);
  return {
    node,
    gateway,
    url,
    get grpcPort() {
      return server?.port;
    },
    get database() {
      return data.database;
    },
    stop,
  };
}
