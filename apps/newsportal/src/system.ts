import { type ChassisNode, runNode } from '@chassis/core';
import { type Database, dataExtension } from '@chassis/data';
import { createGateway, type Gateway } from '@chassis/gateway';
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
  const data = dataExtension({ url: options.databaseUrl ?? env.DATABASE_URL ?? 'pglite://.data/newsportal' });
  const node = await runNodeWith(env, data, {
    ...options.services,
    users: {
      url: env.REDIS_URL || 'redis://127.0.0.1:6379',
      keyPrefix: env.REDIS_KEY_PREFIX ?? 'newsportal:',
      ...options.services?.users,
    },
  });
  let gateway: Gateway | undefined;
  let url: string | undefined;
  const port = options.port ?? (env.PORT === 'off' ? false : Number(env.PORT ?? 8080));
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
  if (options.handleSignals) {
    let stopping = false;
    const shutdown = (signal: NodeJS.Signals) => {
      if (stopping) process.exit(1);
      stopping = true;
      node.log.info(`${signal} received: draining`);
      stop().then(
        () => process.exit(0),
        (error: unknown) => {
          node.log.error({ err: error }, 'drain failed');
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  }
  return {
    node,
    gateway,
    url,
    get database() {
      return data.database;
    },
    stop,
  };
}

async function runNodeWith(
  env: Record<string, string | undefined>,
  data: ReturnType<typeof dataExtension>,
  services: NewsportalServicesOptions,
): Promise<ChassisNode> {
  return runNode({
    services: newsportalServices(services),
    env,
    handleSignals: false,
    extensions: [data],
    ...(env.LOG_LEVEL ? {} : { logLevel: 'warn' as const }),
  });
}
