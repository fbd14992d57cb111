import { ChassisError, fieldErrors, type Identity, type ParsedInput, parseInput, toChassisError } from '@chassis/core';
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import { headerOf } from '../headers.ts';
import { type IdempotencyStore, type StoredAnswer, storedError, withIdempotency } from '../idempotency.ts';
import { authenticate, type Identify } from '../identity.ts';
import { defaultInput, type RouteInputSource } from '../input.ts';
import type { ActionRoute, CustomRoute, CustomRouteContext, Route, RouteAuth, RouteRequest } from '../routes.ts';
import type { GatewayTools, RouteTableTools } from '../tools.ts';
import { contextOf } from './request-context.ts';

export interface RouteTableOptions {
  routes: readonly Route[];
  identify: Identify;
  tools: RouteTableTools;
  idempotency: { store: IdempotencyStore; ttlMs: number };
}

/**
 * The route table as Fastify routes: a route that needs a caller checks it in a preHandler, then an
 * action route builds and validates the action's input and calls it, and a custom route runs its
 * function. Encapsulated, so that its `prefix` (`/v1`) applies to these routes only.
 */
export const routeTable: FastifyPluginCallback<RouteTableOptions> = (api, options, done) => {
  for (const spec of options.routes) {
    const handler =
      spec.kind === 'action'
        ? actionHandler(spec, options.tools, options.idempotency)
        : customHandler(spec, options.tools);
    // A public route has no hook: it still knows a caller who sent a valid token (a bad one is
    // ignored), verified in the handler (`publicCaller`): a hook stage costs every request.
    api.route({
      method: spec.method,
      url: spec.path,
      ...(spec.auth === 'public'
        ? {}
        : { preHandler: authenticate(spec.auth as Exclude<RouteAuth<never>, 'public'> | undefined, options.identify) }),
      handler,
    });
  }
  done();
};

function actionHandler(
  spec: ActionRoute,
  tools: RouteTableTools,
  idempotency: RouteTableOptions['idempotency'],
): (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> | undefined {
  const status = spec.status ?? 200;
  const owns = checksOwnership(spec.auth as RouteAuth<never> | undefined);
  const isPublic = spec.auth === 'public';
  const defaultOf = spec.input ? undefined : defaultInput(spec.method, spec.action.input);
  const inputOf: (request: RouteRequest) => unknown = spec.input ?? defaultOf!;
  const idempotent = spec.method === 'POST';
  /** No Location, no respond mapper, a body, no ownership check: the action's output is the answer. */
  const plain = status !== 204 && spec.location === undefined && spec.respond === undefined && !owns;
  /**
   * The request's input checked against the action's contract (400 with the fields named), giving the
   * parsed value the route's own rules see (`owns`, `location`, `respond`). The call takes the input as
   * it came: the action parses it where it runs, so a transform in its contract is applied to what the
   * client sent, never to a value it already made. On the plain path, where no rule of the route reads
   * the parse, it goes with the call (`parsedInput`) and a handler of the same contract on this node
   * takes it rather than parsing again; on the full way the rules keep a value of their own, which a
   * handler changing its input cannot reach.
   */
  const checked = (raw: unknown): ParsedInput => {
    const parsed = parseInput(spec.action, raw);
    if (parsed.success) return parsed;
    const fields = fieldErrors(parsed.error);
    throw new ChassisError(
      'VALIDATION',
      `Invalid request: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`,
      { data: { fields } },
    );
  };
  async function answerOf(request: FastifyRequest, raw: unknown, input: unknown): Promise<StoredAnswer> {
    const output = await tools.callFor(request, spec.action, raw);
    const headers = spec.location ? { location: spec.location(output, input) } : NO_HEADERS;
    const body = spec.respond ? spec.respond(output, input) : output;
    return { status, body: status === 204 ? null : body, headers };
  }
  const answer = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    if (isPublic) {
      const caller = publicCaller(request, tools);
      if (caller) await caller;
    }
    const req = routeRequest(request);
    const raw = inputOf(req);
    const parsed = checked(raw);
    if (owns) await checkOwnership(spec.auth as RouteAuth<never>, req.user, parsed.data);

    const key = headerOf(request, 'idempotency-key');
    let answer: StoredAnswer;
    if (key !== undefined && idempotent) {
      const result = await withIdempotency(
        idempotency.store,
        {
          key,
          scope: `${req.user?.subject ?? request.ip}:${spec.method}:${request.url}`,
          body: request.body,
          ttlMs: idempotency.ttlMs,
        },
        () => answerOf(request, raw, parsed.data),
      );
      const replayedError = storedError(result);
      if (replayedError) throw replayedError;
      if (result.replayed) reply.header('idempotent-replayed', 'true');
      answer = result;
    } else {
      answer = await answerOf(request, raw, parsed.data);
    }
    for (const name in answer.headers) reply.header(name, answer.headers[name]);
    reply.status(answer.status);
    return answer.status === 204 ? reply.send() : reply.send(answer.body);
  };
  /** The route's URL pattern as Fastify matched it (with the prefix), read once: see `RequestContext.route`. */
  let routeUrl: string | undefined;
  return (request, reply) => {
    routeUrl ??= request.routeOptions.url;
    const context = contextOf(request);
    context.route = routeUrl;
    // Deadline headers refused on arrival: thrown here, synchronously, to Fastify's error handler.
    if (context.refusal) throw context.refusal;
    // The usual request — a plain route, no caller to verify first on a public one, no idempotency key —
    // is not an async function: the call's answer is sent as it comes, without the handler's own promise,
    // its await, and the one Fastify chains on it; and an answer a local handler gave at once is sent
    // here and now, without a promise at all. Anything else goes the full way.
    if (
      !plain ||
      (isPublic && request.headers.authorization !== undefined) ||
      (idempotent && request.headers['idempotency-key'] !== undefined)
    ) {
      return answer(request, reply);
    }
    // A bad input throws here, synchronously: Fastify sends it to the error handler. The default input
    // reads the request's params, query and body only: it is given the request itself, not a copy.
    const raw = defaultOf ? defaultOf(request as unknown as RouteInputSource) : inputOf(routeRequest(request));
    const answered = tools.callNowFor(request, spec.action, raw, checked(raw));
    if (!(answered instanceof Promise)) {
      // An error in sending is thrown to Fastify, which sends it to the error handler.
      reply.status(status).send(answered);
      return undefined;
    }
    answered.then(
      (output) => {
        // As Fastify answers an async handler's result: an error in sending goes to the error handler.
        try {
          reply.status(status).send(output);
        } catch (error) {
          reply.send(error);
        }
      },
      (error: unknown) => {
        // Only an Error reaches the error handler (anything else would be sent as a body).
        if (!reply.sent) reply.send(error instanceof Error ? error : toChassisError(error));
      },
    );
    return undefined;
  };
}

function customHandler(spec: CustomRoute, tools: GatewayTools) {
  const owns = checksOwnership(spec.auth as RouteAuth<never> | undefined);
  const isPublic = spec.auth === 'public';
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const refusal = contextOf(request).refusal;
    if (refusal) throw refusal;
    if (isPublic) {
      const caller = publicCaller(request, tools);
      if (caller) await caller;
    }
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

/** A custom route's `call`: actions called as the request's caller. */
function callsAs(request: FastifyRequest, tools: GatewayTools): CustomRouteContext['call'] {
  return (contract, input, options) => tools.callFor(request, contract, input, options);
}

/** No headers of its own: one object for every answer without (never written to). */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * On a public route (no preHandler), the caller of a request that sent a token, verified before the
 * route reads `user`; a bad token is ignored. Undefined when there is nothing to wait for.
 */
function publicCaller(request: FastifyRequest, tools: GatewayTools): Promise<unknown> | undefined {
  return request.headers.authorization === undefined ? undefined : tools.identify(request).catch(() => undefined);
}

/** What a route's mapper and handler see. */
function routeRequest(request: FastifyRequest): RouteRequest {
  return {
    params: (request.params ?? {}) as Record<string, string>,
    query: (request.query ?? {}) as Record<string, unknown>,
    body: request.body,
    headers: request.headers,
    user: contextOf(request).user,
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
