import { ChassisError } from '@chassis/core';
import rateLimit from '@fastify/rate-limit';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import type { Identify } from '../identity.ts';

export interface RateLimitsOptions {
  /** Requests per client per window. */
  max: number;
  timeWindowMs: number;
  /** Shared by the gateway's instances: one limit for them all. Without it each counts on its own. */
  redis: Redis | undefined;
  identify: Identify;
}

const plugin: FastifyPluginAsync<RateLimitsOptions> = async (app, { max, timeWindowMs, redis, identify }) => {
  await app.register(rateLimit, {
    global: true,
    max,
    timeWindow: timeWindowMs,
    // Before authentication (a preHandler), so refused tokens are counted too: a client is its verified
    // token's subject, and anyone else — no token, a bad one — its address.
    hook: 'preValidation',
    enableDraftSpec: true,
    // Redis unreachable: requests go on without a limit (logged once, see redis.ts) rather than fail.
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
};

/**
 * Per-client limits with `@fastify/rate-limit`, on the root so that it sees every route registered after
 * it; a route opts out with `config: { rateLimit: false }` (health, the API description).
 */
export const rateLimits = fp(plugin, { name: 'chassis-rate-limits', fastify: '5.x' });
