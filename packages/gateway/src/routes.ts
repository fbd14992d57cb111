import type { ActionContract, Identity, InputOf, OutputOf } from '@chassis/core';
import type { z } from 'zod';

/**
 * The route table: each route maps one HTTP method and path to one action. The action's contract is the
 * route's contract too — its input schema validates the request at the edge (400 with the fields named),
 * its output schema types and documents the response.
 */

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** What a route's `input` mapper sees of the request. */
export interface RouteRequest {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
  /** The verified caller, on routes that are not public. */
  user: Identity | undefined;
}

/**
 * Who may call a route. `public`: anyone, no token needed. Otherwise a valid bearer token is required
 * (401 without one), with one of `roles` if given (403 otherwise), and `owns` must hold for the input
 * (403 otherwise): e.g. a customer acts only on their own accounts.
 */
export type RouteAuth<I = unknown> =
  | 'public'
  | {
      roles?: readonly string[];
      owns?: (user: Identity, input: I) => boolean | Promise<boolean>;
    };

export interface RouteOptions<C extends ActionContract> {
  /**
   * Builds the action's input from the request. Default: the path parameters, then (GET, DELETE) the
   * query string with numbers and booleans read as the contract's fields expect, or (POST, PUT, PATCH)
   * the JSON body's fields, the path parameters winning over the body.
   */
  input?: (request: RouteRequest) => unknown;
  /** Success status: 200 by default, 201 for a created resource, 202 for accepted work, 204 for none. */
  status?: 200 | 201 | 202 | 204;
  /** The `Location` header of a 201 or 202, e.g. `(out) => \`/orders/${out.orderId}\``. */
  location?: (output: OutputOf<C>, input: InputOf<C>) => string;
  /** The response body, when it is not the action's output as it is. */
  respond?: (output: OutputOf<C>, input: InputOf<C>) => unknown;
  /** The schema of what `respond` returns, for OpenAPI. */
  responseSchema?: z.ZodType;
  /** Who may call it; default: any caller with a valid token. */
  auth?: RouteAuth<InputOf<C>>;
  summary?: string;
  description?: string;
  tags?: readonly string[];
}

export interface ActionRoute<C extends ActionContract = ActionContract> extends RouteOptions<C> {
  readonly kind: 'action';
  readonly method: HttpMethod;
  /** Fastify syntax: `/orders/:id`. */
  readonly path: string;
  readonly action: C;
}

/** What a custom route's handler gets: the request and a way to call actions as the caller. */
export interface CustomRouteContext {
  request: RouteRequest;
  /** Calls an action with the caller's token, request id, trace context and the request's deadline. */
  call<C extends ActionContract>(
    contract: C,
    input: InputOf<C>,
    options?: { timeoutMs?: number },
  ): Promise<OutputOf<C>>;
  /** Absolute epoch ms after which nobody waits for the answer. */
  deadline: number;
  requestId: string;
}

/**
 * A route answered by a function rather than one action: backend-for-frontend compositions, a health
 * page, a webhook. The function returns the body; throw a `ChassisError` for an error status.
 */
export interface CustomRoute {
  readonly kind: 'custom';
  readonly method: HttpMethod;
  readonly path: string;
  readonly handler: (context: CustomRouteContext) => Promise<unknown>;
  readonly status?: 200 | 201 | 202 | 204;
  /** Default: any caller with a valid token. */
  readonly auth?: RouteAuth<RouteRequest>;
  /** The request body's and the response's schemas, for OpenAPI. */
  readonly bodySchema?: z.ZodType;
  readonly responseSchema?: z.ZodType;
  readonly summary?: string;
  readonly description?: string;
  readonly tags?: readonly string[];
}

export type Route = ActionRoute | CustomRoute;

function actionRoute(method: HttpMethod) {
  return <C extends ActionContract>(path: string, action: C, options: RouteOptions<C> = {}): ActionRoute<C> => ({
    kind: 'action',
    method,
    path,
    action,
    ...options,
  });
}

/**
 * Route builders: `route.post('/shares/sell', sellShares, { status: 202, location: (o) => … })`,
 * `route.custom('GET', '/dashboard', async ({ call }) => …)`.
 */
export const route = {
  get: actionRoute('GET'),
  post: actionRoute('POST'),
  put: actionRoute('PUT'),
  patch: actionRoute('PATCH'),
  delete: actionRoute('DELETE'),
  custom(
    method: HttpMethod,
    path: string,
    handler: CustomRoute['handler'],
    options: Omit<CustomRoute, 'kind' | 'method' | 'path' | 'handler'> = {},
  ): CustomRoute {
    return { kind: 'custom', method, path, handler, ...options };
  },
};

/**
 * An ownership rule for `auth.owns`: the token's `claim` (an array of ids) must hold the input's
 * `field`; callers with one of `bypassRoles` (e.g. `admin`) pass anyway.
 * `ownedBy('accounts', 'accountId', { bypassRoles: ['admin'] })`.
 */
export function ownedBy(claim: string, field: string, options: { bypassRoles?: readonly string[] } = {}) {
  return (user: Identity, input: unknown): boolean => {
    if (options.bypassRoles?.some((role) => user.roles.includes(role))) return true;
    const owned = user.claims[claim];
    const value = (input as Record<string, unknown> | null)?.[field];
    return Array.isArray(owned) && value !== undefined && owned.includes(value);
  };
}
