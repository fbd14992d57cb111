import { ChassisError, type ChassisNode, type IdentityVerifier } from '@chassis/core';
import cors, { type FastifyCorsOptions } from '@fastify/cors';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { DeadlineOptions } from './deadline.ts';
import { type IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore } from './idempotency.ts';
import { identifier } from './identity.ts';
import type { OpenApiInfo } from './openapi.ts';
import { answerFrameworkError, errorAnswers } from './plugins/error-answers.ts';
import { health } from './plugins/health.ts';
import { openApiRoutes } from './plugins/openapi-routes.ts';
import { rateLimits } from './plugins/rate-limits.ts';
import { requestIdentifier } from './plugins/request-context.ts';
import { requestMetrics } from './plugins/request-metrics.ts';
import { routeTable } from './plugins/route-table.ts';
import { gatewayRedis } from './redis.ts';
import type { Route } from './routes.ts';
import { type GatewayTools, gatewayTools } from './tools.ts';

export interface RateLimitSettings {
  /** Requests per client per window. Default 100. */
  max?: number;
  /** Default 60 000 ms. */
  timeWindowMs?: number;
}

export interface GatewayOptions {
  /** The node whose transport carries the gateway's calls to the services. */
  node: ChassisNode;
  routes: readonly Route[];
  /** Verifies bearer tokens; needed as soon as one route is not public. */
  auth?: IdentityVerifier;
  /** Serves every route under it, e.g. `/v1`: API versions side by side. */
  prefix?: string;
  /** Largest request body, in bytes. Default 1 MiB. */
  bodyLimit?: number;
  /** Deadlines of the calls a request makes: default 5 s, at most 30 s whatever the client asks. */
  deadline?: Partial<DeadlineOptions>;
  /** Per client (token subject, else address); `false` turns it off. */
  rateLimit?: RateLimitSettings | false;
  /**
   * Redis shared by the gateway instances for rate limits and idempotency keys: a URL or a client.
   * Default `REDIS_URL`; without it each instance counts on its own.
   */
  redis?: string | Redis;
  /** How long an `Idempotency-Key` answer is kept. Default 24 h. */
  idempotencyTtlMs?: number;
  /** CORS: off by default; `true` allows any origin. */
  cors?: FastifyCorsOptions | boolean;
  /** Title and version of `/openapi.json`; `false` serves neither it nor `/docs`. */
  openapi?: OpenApiInfo | false;
  /** Serve `/health/live` and `/health/ready` (the node's checks). Default true. */
  health?: boolean;
  /**
   * Which proxies in front of the gateway to believe about the client's address (`X-Forwarded-For`),
   * as Fastify takes it: `true` or their addresses (`"10.0.0.0/8"`). Default: none.
   */
  trustProxy?: boolean | string | string[];
  /** Adds routes or plugins (GraphQL, say) before the gateway starts. */
  register?: (app: FastifyInstance, tools: GatewayTools) => Promise<void> | void;
}

export interface Gateway {
  readonly app: FastifyInstance;
  /** Starts listening; resolves to the address, e.g. `http://127.0.0.1:8080`. */
  listen(options?: { port?: number; host?: string }): Promise<string>;
  close(): Promise<void>;
}

/**
 * The HTTP edge. Each request gets a request id (`X-Request-Id`, kept when the client sends a sane one)
 * that is the correlation id of everything it causes, a deadline, and a verified caller; its input is
 * checked against the action's contract before any service sees it; every error is answered in one
 * shape with the catalog's status.
 *
 * The gateway is Fastify plugins registered in order (plugins/): the order is the hooks' order within
 * each stage of a request (onRequest: CORS; preValidation: the rate limit; preHandler: the route's auth;
 * onSend: the request id header and the histogram). The request's context is made before any of them,
 * by `genReqId`.
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const { node } = options;
  const prefix = normalizePrefix(options.prefix);
  const deadlines: DeadlineOptions = {
    defaultTimeoutMs: options.deadline?.defaultTimeoutMs ?? 5000,
    maxTimeoutMs: options.deadline?.maxTimeoutMs ?? 30_000,
  };
  if (!options.auth && options.routes.some((r) => r.auth !== 'public')) {
    throw new ChassisError(
      'CONFIG',
      'Some routes need a caller (their auth is not "public") but the gateway has no `auth` verifier: pass jwtVerifier({ secret }) or jwtVerifier({ jwksUrl })',
    );
  }
  const { redis, own: ownRedis } = await gatewayRedis(options.redis, node.log);
  const idempotency: IdempotencyStore = redis ? new RedisIdempotencyStore(redis) : new MemoryIdempotencyStore();
  const identify = identifier(options.auth);
  const tools = gatewayTools({ node, identify, deadlines, prefix });

  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    // The request's id, and its context made on arrival (its deadline read from this moment).
    genReqId: requestIdentifier(deadlines),
    // Off by default: trusting X-Forwarded-For from anyone would let a client pick the address its
    // rate limit is counted under.
    trustProxy: options.trustProxy ?? false,
    frameworkErrors: answerFrameworkError,
  });
  // JSON only: a text/plain body is a 415, not a string handed to a contract.
  app.removeContentTypeParser('text/plain');

  await app.register(requestMetrics, { registry: node.metrics.registry });
  await app.register(errorAnswers, { log: node.log });
  if (options.cors) await app.register(cors, options.cors === true ? { origin: true } : options.cors);
  if (options.rateLimit !== false) {
    await app.register(rateLimits, {
      max: options.rateLimit?.max ?? 100,
      timeWindowMs: options.rateLimit?.timeWindowMs ?? 60_000,
      redis,
      identify,
    });
  }
  await app.register(routeTable, {
    prefix,
    routes: options.routes,
    identify,
    tools,
    idempotency: { store: idempotency, ttlMs: options.idempotencyTtlMs ?? 24 * 3600_000 },
  });
  if (options.openapi !== false) {
    const info = options.openapi ?? { title: 'API', version: '1.0.0' };
    await app.register(openApiRoutes, { routes: options.routes, info, routePrefix: prefix });
  }
  if (options.health !== false) await app.register(health, { node });
  try {
    await options.register?.(app, tools);
  } catch (error) {
    await app.close().catch(() => undefined);
    if (ownRedis) ownRedis.disconnect();
    throw error;
  }

  return {
    app,
    async listen(listenOptions = {}) {
      return app.listen({ port: listenOptions.port ?? 8080, host: listenOptions.host ?? '127.0.0.1' });
    },
    async close() {
      await app.close();
      if (ownRedis) await ownRedis.quit().catch(() => ownRedis.disconnect());
    },
  };
}

function normalizePrefix(prefix: string | undefined): string {
  if (!prefix || prefix === '/') return '';
  const trimmed = prefix.replace(/\/+$/, '');
  return trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}
