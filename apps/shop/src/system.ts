import {
  type ChassisNode,
  drainOnSignals,
  envLimit,
  envNumber,
  envPort,
  jwtVerifier,
  runNode,
  tokenSecret,
} from '@chassis/core';
import { type Database, dataExtension } from '@chassis/data';
import { createGateway, type Gateway } from '@chassis/gateway';
import { registerBookMetrics, shopApi } from './gateway.ts';
import { shopGrpcServer } from './grpc.ts';
import { registerShopMetrics } from './metrics.ts';
import { type ShopServicesOptions, shopServices } from './services.ts';

/** Used when SHOP_JWT_SECRET / CHASSIS_JWT_SECRET is not set, outside production only: anyone can read it here. */
const DEVELOPMENT_SECRET = 'shop-development-secret-not-for-production-use';

export interface ShopOptions {
  /** The environment (`CHASSIS_TRANSPORT`, `SERVICES`, `DATABASE_URL`, `CHASSIS_JWT_SECRET`, …). */
  env?: Record<string, string | undefined>;
  /** Default `DATABASE_URL`, else `pglite://.data/shop`: the embedded default keeps its data. */
  databaseUrl?: string;
  /** The gateway's port (`PORT`, default 8080; 0 picks a free one); `false` (`PORT=off`) runs no gateway here. */
  port?: number | false;
  host?: string;
  /** Drain and exit on SIGTERM and SIGINT: the gateway first, then the node. */
  handleSignals?: boolean;
  /** Service settings for tests and tuning (the saga runner's lease and sweep, a token's lifetime). */
  services?: Omit<ShopServicesOptions, 'secret'>;
  /** The gateway's rate limit per caller and minute; default `RATE_LIMIT_PER_MINUTE`, else 300. */
  rateLimitPerMinute?: number | false;
}

export interface Shop {
  node: ChassisNode;
  gateway: Gateway | undefined;
  /** The gateway's address, e.g. `http://127.0.0.1:8080`. */
  url: string | undefined;
  /** The secret tokens are signed with (for tests that make their own). */
  secret: string;
  /** The database of the services hosted here. */
  database: Database;
  /** The port of gRPC `UserService` on this node (the one hosting shop-users), unless `GRPC_PORT=off`. */
  grpcPort: number | undefined;
  stop(): Promise<void>;
}

/** A gateway in front of a node of the shop: the API, the BFFs, rate limits, `node_requests_total`. */
export async function createShopGateway(
  node: ChassisNode,
  secret: string,
  rateLimitPerMinute: number | false,
): Promise<Gateway> {
  registerBookMetrics(node);
  return createGateway({
    node,
    routes: shopApi.routes,
    auth: jwtVerifier({ secret }),
    rateLimit: rateLimitPerMinute === false ? false : { max: rateLimitPerMinute },
    openapi: shopApi.openapi,
  });
}

/**
 * The Shop on one node — every service in `SERVICES` (all by default) — with the gateway in front.
 * With nothing configured: the memory transport and PGlite in `.data/shop`, the embedded default.
 */
export async function startShop(options: ShopOptions = {}): Promise<Shop> {
  const env = options.env ?? process.env;
  const secret = tokenSecret(env, DEVELOPMENT_SECRET, ['SHOP_JWT_SECRET', 'CHASSIS_JWT_SECRET']);
  // Read before anything starts: a bad PORT is a CONFIG error, not a node left running.
  const port = options.port ?? envPort(env, 'PORT', 8080);
  const data = dataExtension({ url: options.databaseUrl ?? env.DATABASE_URL ?? 'pglite://.data/shop' });
  // gRPC UserService where the users service runs: 50052 by default, beside the News portal's 50051.
  const hosts = (service: string) => !env.SERVICES || env.SERVICES.split(',').some((name) => name.trim() === service);
  const hostsUsers = hosts('shop-users');
  const grpcPort = hostsUsers ? envPort(env, 'GRPC_PORT', 50052) : false;
  const grpc = grpcPort !== false ? shopGrpcServer({ port: grpcPort, host: env.GRPC_HOST ?? env.HOST }) : undefined;
  const node = await runNode({
    services: shopServices({
      ...options.services,
      tokenTtlSeconds: options.services?.tokenTtlSeconds ?? envNumber(env, 'SHOP_TOKEN_TTL_SECONDS'),
      secret,
    }),
    env,
    handleSignals: false,
    identity: jwtVerifier({ secret }),
    extensions: grpc ? [data, grpc] : [data],
    ...(env.LOG_LEVEL ? {} : { logLevel: 'warn' as const }),
  });
  registerShopMetrics(node, () => data.database, hosts);
  let gateway: Gateway | undefined;
  let url: string | undefined;
  try {
    if (port !== false) {
      const limit = options.rateLimitPerMinute ?? envLimit(env, 'RATE_LIMIT_PER_MINUTE', 300);
      gateway = await createShopGateway(node, secret, limit);
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
    secret,
    get database() {
      return data.database;
    },
    grpcPort: grpc?.port,
    stop,
  };
}
