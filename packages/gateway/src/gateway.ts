import { randomUUID } from 'node:crypto';
import {
  type ActionContract,
  ChassisError,
  type ChassisNode,
  fieldErrors,
  type Identity,
  type IdentityVerifier,
  type InputOf,
  type OutputOf,
} from '@chassis/core';
import cors, { type FastifyCorsOptions } from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import { Histogram } from 'prom-client';
import { type DeadlineOptions, requestDeadline } from './deadline.ts';
import { errorBody, gatewayError } from './errors.ts';
import {
  type IdempotencyStore,
  MemoryIdempotencyStore,
  RedisIdempotencyStore,
  type StoredAnswer,
  storedError,
  withIdempotency,
} from './idempotency.ts';
import { defaultInput } from './input.ts';
import { docsPage, type OpenApiInfo, openApiDocument } from './openapi.ts';
import type { ActionRoute, CustomRoute, CustomRouteContext, Route, RouteAuth, RouteRequest } from './routes.ts';

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

/** What a plugin of the gateway's is given to call actions as the request's caller. */
export interface GatewayTools {
  /** The caller of a request (verifying its bearer token if it has one); undefined for an anonymous one. */
  identify(request: FastifyRequest): Promise<Identity | undefined>;
  /** Calls an action on behalf of a request: its token, request id, trace context and deadline. */
  callFor<C extends ActionContract>(
    request: FastifyRequest,
    contract: C,
    input: InputOf<C>,
    options?: { timeoutMs?: number },
  ): Promise<OutputOf<C>>;
  /** The request's absolute deadline: from `Request-Timeout` or `X-Deadline`, capped, else the default. */
  deadlineOf(request: FastifyRequest): number;
  /** Records how a request ended (an error code, or `ok`) for the gateway's request histogram. */
  recordOutcome(request: FastifyRequest, outcome: string): void;
  /** The node's logger: what a plugin hides from a client (an internal error) it logs here. */
  log: ChassisNode['log'];
  /** The version prefix the routes are served under (`/v1`), or ''. */
  prefix: string;
}

export interface Gateway {
  readonly app: FastifyInstance;
  /** Starts listening; resolves to the address, e.g. `http://127.0.0.1:8080`. */
  listen(options?: { port?: number; host?: string }): Promise<string>;
  close(): Promise<void>;
}

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

interface RequestState {
  identity?: Promise<Identity | undefined>;
  /** The verified caller, once `identity` has settled on one. */
  user?: Identity;
  deadline?: number;
  /** The error code the request ended with, for the metrics. */
  outcome?: string;
}

/** A request without an Authorization header: no caller, known at once. */
const ANONYMOUS: Promise<Identity | undefined> = Promise.resolve(undefined);

const states = new WeakMap<FastifyRequest, RequestState>();
function stateOf(request: FastifyRequest): RequestState {
  let state = states.get(request);
  if (!state) {
    state = {};
    states.set(request, state);
  }
  return state;
}

/**
 * The HTTP edge. Each request gets a request id (`X-Request-Id`, kept when the client sends a sane one)
 * that is the correlation id of everything it causes, a deadline, and a verified caller; its input is
 * checked against the action's contract before any service sees it; every error is answered in one
 * shape with the catalog's status.
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const { node } = options;
  const prefix = normalizePrefix(options.prefix);
  const deadlines: DeadlineOptions = {
    defaultTimeoutMs: options.deadline?.defaultTimeoutMs ?? 5000,
    maxTimeoutMs: options.deadline?.maxTimeoutMs ?? 30_000,
  };
  const needsAuth = options.routes.some((r) => r.auth !== 'public');
  if (needsAuth && !options.auth) {
    throw new ChassisError(
      'CONFIG',
      'Some routes need a caller (their auth is not "public") but the gateway has no `auth` verifier: pass jwtVerifier({ secret }) or jwtVerifier({ jwksUrl })',
    );
  }
  const redisUrl = typeof options.redis === 'string' ? options.redis : process.env.REDIS_URL || undefined;
  // No offline queue: while Redis is unreachable a command fails at once instead of holding the request.
  const ownRedis = redisUrl
    ? new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: false })
    : undefined;
  if (ownRedis) await watchRedis(ownRedis, node.log);
  const redis = typeof options.redis === 'object' ? options.redis : ownRedis;
  const idempotency: IdempotencyStore = redis ? new RedisIdempotencyStore(redis) : new MemoryIdempotencyStore();
  const idempotencyTtlMs = options.idempotencyTtlMs ?? 24 * 3600_000;

  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Off by default: trusting X-Forwarded-For from anyone would let a client pick the address its
    // rate limit is counted under.
    trustProxy: options.trustProxy ?? false,
    // A URL that does not decode or a path parameter too long for the router is refused before any hook
    // or the error handler runs: without this Fastify answers in its own shape, with no request id.
    frameworkErrors: (error, request, reply) => {
      const failure = gatewayError(error);
      stateOf(request as FastifyRequest).outcome = failure.code;
      (reply as FastifyReply)
        .header('x-request-id', request.id)
        .status(failure.status)
        .type('application/json')
        .send(errorBody(failure, request.id));
    },
  });
  // JSON only: a text/plain body is a 415, not a string handed to a contract.
  app.removeContentTypeParser('text/plain');

  const duration = httpHistogram(node);
  const deadlineOf = (request: FastifyRequest): number => {
    const state = stateOf(request);
    state.deadline ??= requestDeadline(request.headers, deadlines);
    return state.deadline;
  };

  // The hooks on every request take Fastify's callback form: an async hook costs a promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    // From the request's arrival: the client's Request-Timeout counts the upload and the token check too.
    try {
      deadlineOf(request);
    } catch (error) {
      done(error as Error);
      return;
    }
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    // Only matched routes become label values: a scan of random paths must not grow the metric.
    const route = request.routeOptions.url ?? '(unmatched)';
    duration.observe(
      {
        method: request.method,
        route,
        status: String(reply.statusCode),
        outcome: stateOf(request).outcome ?? 'ok',
      },
      reply.elapsedTime / 1000,
    );
    done();
  });

  app.setErrorHandler(async (error, request, reply) => {
    const failure = gatewayError(error);
    stateOf(request).outcome = failure.code;
    if (failure.status >= 500 && (failure.code === 'INTERNAL' || failure.code === 'CONFIG')) {
      node.log.error({ err: error, requestId: request.id, url: request.url }, 'request failed inside the gateway');
    }
    if (failure.code === 'UNAUTHENTICATED') reply.header('www-authenticate', 'Bearer');
    const retryAfterMs = Number((failure.data as { retryAfterMs?: unknown } | undefined)?.retryAfterMs);
    if (Number.isFinite(retryAfterMs) && retryAfterMs > 0 && !reply.hasHeader('retry-after')) {
      reply.header('retry-after', String(Math.ceil(retryAfterMs / 1000)));
    }
    return reply.status(failure.status).type('application/json').send(errorBody(failure, request.id));
  });
  app.setNotFoundHandler(async (request, reply) => {
    stateOf(request).outcome = 'NOT_FOUND';
    return reply
      .status(404)
      .send(
        errorBody(new ChassisError('NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`), request.id),
      );
  });

  if (options.cors) await app.register(cors, options.cors === true ? { origin: true } : options.cors);

  const verifyBearer = async (request: FastifyRequest): Promise<Identity | undefined> => {
    const header = request.headers.authorization;
    if (header === undefined) return undefined;
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    if (!token) throw new ChassisError('UNAUTHENTICATED', 'The Authorization header must be "Bearer <token>"');
    if (!options.auth) throw new ChassisError('UNAUTHENTICATED', 'This gateway accepts no tokens');
    return options.auth(token);
  };
  // Verified once per request, whoever asks first (the route's auth, a call, a GraphQL resolver).
  const identify = (request: FastifyRequest): Promise<Identity | undefined> => {
    if (request.headers.authorization === undefined) return ANONYMOUS;
    const state = stateOf(request);
    state.identity ??= verifyBearer(request).then((user) => {
      state.user = user;
      return user;
    });
    return state.identity;
  };

  if (options.rateLimit !== false) {
    const limits = options.rateLimit ?? {};
    await app.register(rateLimit, {
      global: true,
      max: limits.max ?? 100,
      timeWindow: limits.timeWindowMs ?? 60_000,
      // Before authentication (a preHandler), so refused tokens are counted too: a client is its verified
      // token's subject, and anyone else — no token, a bad one — its address.
      hook: 'preValidation',
      enableDraftSpec: true,
      // Redis unreachable: requests go on without a limit (logged once, see watchRedis) rather than fail.
      skipOnError: true,
      ...(redis ? { redis, nameSpace: 'chassis-rate-limit:' } : {}),
      keyGenerator: async (request) => {
        const user = await identify(request).catch(() => undefined);
        return user ? `user:${user.subject}` : `ip:${request.ip}`;
      },
      errorResponseBuilder: (_request, context) =>
        new ChassisError('RATE_LIMITED', `Too many requests: at most ${context.max} per ${context.after} window`, {
          data: { limit: context.max, retryAfterMs: context.ttl },
        }),
    });
  }

  const callFor = async <C extends ActionContract>(
    request: FastifyRequest,
    contract: C,
    input: InputOf<C>,
    callOptions: { timeoutMs?: number } = {},
  ): Promise<OutputOf<C>> => {
    // Only a token the gateway verified travels on: on a public route a bad one is ignored, not passed
    // to a service that would refuse the whole call.
    const user = await identify(request).catch(() => undefined);
    const token = user ? bearerToken(request) : undefined;
    const requestDeadlineAt = deadlineOf(request);
    const deadline =
      callOptions.timeoutMs === undefined
        ? requestDeadlineAt
        : Math.min(requestDeadlineAt, Date.now() + callOptions.timeoutMs);
    const traceparent = header(request, 'traceparent');
    const tracestate = header(request, 'tracestate');
    return node.call(contract, input, {
      deadline,
      correlationId: request.id,
      ...(token ? { auth: token } : {}),
      ...(traceparent ? { traceparent } : {}),
      ...(tracestate ? { tracestate } : {}),
    });
  };
  const tools: GatewayTools = {
    identify,
    callFor,
    deadlineOf,
    recordOutcome: (request, outcome) => {
      stateOf(request).outcome = outcome;
    },
    log: node.log,
    prefix,
  };

  await app.register(
    async (api) => {
      for (const spec of options.routes) {
        api.route({
          method: spec.method,
          url: spec.path,
          preHandler: authenticate(spec.auth, identify),
          handler:
            spec.kind === 'action'
              ? actionHandler(spec, tools, idempotency, idempotencyTtlMs)
              : customHandler(spec, tools),
        });
      }
    },
    { prefix },
  );

  if (options.openapi !== false) {
    const info = options.openapi ?? { title: 'API', version: '1.0.0' };
    const document = openApiDocument(options.routes, { ...info, prefix });
    app.get('/openapi.json', { config: { rateLimit: false } }, async () => document);
    app.get('/docs', { config: { rateLimit: false } }, async (_request, reply) =>
      reply.type('text/html; charset=utf-8').send(docsPage(info.title, '/openapi.json')),
    );
  }
  if (options.health !== false) {
    const report = async (reply: FastifyReply, check: () => Promise<{ status: string }>) => {
      const result = await check();
      return reply
        .status(result.status === 'fail' ? 503 : 200)
        .type('application/health+json')
        .send(result);
    };
    app.get('/health/live', { config: { rateLimit: false } }, (_request, reply) =>
      report(reply, () => node.liveness()),
    );
    app.get('/health/ready', { config: { rateLimit: false } }, (_request, reply) =>
      report(reply, () => node.readiness()),
    );
  }
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

/**
 * Says when the gateway's Redis goes away and comes back (rate limits are not enforced and
 * Idempotency-Key requests are refused meanwhile), once per outage, and waits up to 2 s for the first
 * connection so that a gateway starting beside its Redis begins with both.
 */
async function watchRedis(redis: Redis, log: ChassisNode['log']): Promise<void> {
  let down = false;
  redis.on('error', (error: Error) => {
    if (down) return;
    down = true;
    log.warn(
      { err: error },
      'Redis is unreachable: rate limits are not enforced and requests with an Idempotency-Key are refused (503) until it is back',
    );
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    log.info('Redis is back: rate limits and Idempotency-Key requests work again');
  });
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 2000);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function authenticate(auth: RouteAuth<never> | undefined, identify: GatewayTools['identify']) {
  if (auth === 'public') {
    // A public route still knows a caller who sent a valid token; a bad one is ignored here.
    return (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
      if (request.headers.authorization === undefined) return done();
      identify(request).then(
        () => done(),
        () => done(),
      );
    };
  }
  return async (request: FastifyRequest) => {
    const user = await identify(request);
    if (!user)
      throw new ChassisError('UNAUTHENTICATED', 'This route needs a bearer token (Authorization: Bearer <token>)');
    const roles = auth?.roles;
    if (roles && roles.length > 0 && !roles.some((role) => user.roles.includes(role))) {
      throw new ChassisError('FORBIDDEN', `This route needs the role ${roles.map((r) => `"${r}"`).join(' or ')}`, {
        data: { required: roles },
      });
    }
  };
}

/** Whether a route's auth has an ownership check: a route without one skips it, and its promise. */
function checksOwnership(auth: RouteAuth<never> | undefined): boolean {
  return typeof auth === 'object' && auth.owns !== undefined;
}

async function checkOwnership(auth: RouteAuth<never> | undefined, user: Identity | undefined, input: unknown) {
  if (auth === undefined || auth === 'public' || !auth.owns || !user) return;
  if (!(await (auth.owns as (user: Identity, input: unknown) => boolean | Promise<boolean>)(user, input))) {
    throw new ChassisError('FORBIDDEN', 'This resource belongs to another customer');
  }
}

function routeRequest(request: FastifyRequest): RouteRequest {
  return {
    params: (request.params ?? {}) as Record<string, string>,
    query: (request.query ?? {}) as Record<string, unknown>,
    body: request.body,
    headers: request.headers,
    user: stateOf(request).user,
  };
}

function actionHandler(
  spec: ActionRoute,
  tools: GatewayTools,
  store: IdempotencyStore,
  ttlMs: number,
): (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> {
  const status = spec.status ?? 200;
  const owns = checksOwnership(spec.auth as RouteAuth<never> | undefined);
  async function answerOf(request: FastifyRequest, input: unknown): Promise<StoredAnswer> {
    const output = await tools.callFor(request, spec.action, input);
    const headers: Record<string, string> = {};
    if (spec.location) headers.location = spec.location(output, input);
    const body = spec.respond ? spec.respond(output, input) : output;
    return { status, body: status === 204 ? null : body, headers };
  }
  return async (request, reply) => {
    const req = routeRequest(request);
    const raw = spec.input ? spec.input(req) : defaultInput(spec.method, spec.action.input, req);
    const parsed = spec.action.input.safeParse(raw);
    if (!parsed.success) {
      const fields = fieldErrors(parsed.error);
      throw new ChassisError(
        'VALIDATION',
        `Invalid request: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`,
        {
          data: { fields },
        },
      );
    }
    const input = parsed.data;
    if (owns) await checkOwnership(spec.auth as RouteAuth<never>, req.user, input);

    const key = header(request, 'idempotency-key');
    let answer: StoredAnswer;
    if (key !== undefined && spec.method === 'POST') {
      const result = await withIdempotency(
        store,
        { key, scope: `${req.user?.subject ?? request.ip}:${spec.method}:${request.url}`, body: request.body, ttlMs },
        () => answerOf(request, input),
      );
      const replayedError = storedError(result);
      if (replayedError) throw replayedError;
      if (result.replayed) reply.header('idempotent-replayed', 'true');
      answer = result;
    } else {
      answer = await answerOf(request, input);
    }
    for (const [name, value] of Object.entries(answer.headers)) reply.header(name, value);
    reply.status(answer.status);
    return answer.status === 204 ? reply.send() : reply.send(answer.body);
  };
}

/** A custom route's `call`: actions called as the request's caller (made here, not as a property, for tsx's keepNames). */
function callsAs(request: FastifyRequest, tools: GatewayTools): CustomRouteContext['call'] {
  return (contract, input, options) => tools.callFor(request, contract, input, options);
}

function customHandler(spec: CustomRoute, tools: GatewayTools) {
  const owns = checksOwnership(spec.auth as RouteAuth<never> | undefined);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const req = routeRequest(request);
    if (owns) await checkOwnership(spec.auth as RouteAuth<never>, req.user, req);
    const body = await spec.handler({
      request: req,
      call: callsAs(request, tools),
      deadline: tools.deadlineOf(request),
      requestId: request.id,
    });
    reply.status(spec.status ?? 200);
    return spec.status === 204 ? reply.send() : reply.send(body);
  };
}

const HTTP_METRIC = 'chassis_http_server_duration_seconds';

/** The gateway's request histogram on the node's registry (one, however many gateways share the node). */
function httpHistogram(node: ChassisNode): Histogram<'method' | 'route' | 'status' | 'outcome'> {
  const existing = node.metrics.registry.getSingleMetric(HTTP_METRIC);
  if (existing) return existing as Histogram<'method' | 'route' | 'status' | 'outcome'>;
  return new Histogram({
    name: HTTP_METRIC,
    help: 'Time to answer an HTTP request at the gateway, by method, route, status and outcome',
    labelNames: ['method', 'route', 'status', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [node.metrics.registry],
  });
}

function bearerToken(request: FastifyRequest): string | undefined {
  const value = request.headers.authorization;
  return value ? /^Bearer\s+(\S+)\s*$/i.exec(value)?.[1] : undefined;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function normalizePrefix(prefix: string | undefined): string {
  if (!prefix || prefix === '/') return '';
  const trimmed = prefix.replace(/\/+$/, '');
  return trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}
