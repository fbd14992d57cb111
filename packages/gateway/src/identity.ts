import { ChassisError, type Identity, type IdentityVerifier } from '@chassis/core';
import type { FastifyRequest } from 'fastify';
import { bearerToken } from './headers.ts';
import { contextOf } from './plugins/request-context.ts';
import type { RouteAuth } from './routes.ts';

/**
 * Who is calling. Verified lazily, once per request, by whoever asks first — the rate limit's key, the
 * route's auth, a call, a GraphQL resolver — rather than in a hook: a public route ignores a bad token,
 * and a request refused earlier never pays for a signature check.
 */
export type Identify = (request: FastifyRequest) => Promise<Identity | undefined>;

/** A request without an Authorization header: no caller, known at once. */
const ANONYMOUS: Promise<Identity | undefined> = Promise.resolve(undefined);

export function identifier(verifier: IdentityVerifier | undefined): Identify {
  const verify = async (request: FastifyRequest): Promise<Identity | undefined> => {
    const token = bearerToken(request);
    if (!token) throw new ChassisError('UNAUTHENTICATED', 'The Authorization header must be "Bearer <token>"');
    if (!verifier) throw new ChassisError('UNAUTHENTICATED', 'This gateway accepts no tokens');
    return verifier(token);
  };
  return (request) => {
    if (request.headers.authorization === undefined) return ANONYMOUS;
    const context = contextOf(request);
    context.identity ??= verify(request).then((user) => {
      context.user = user;
      return user;
    });
    return context.identity;
  };
}

/** The preHandler of a route that needs a caller: one with one of the route's roles, or 401/403. */
export function authenticate(auth: Exclude<RouteAuth<never>, 'public'> | undefined, identify: Identify) {
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
