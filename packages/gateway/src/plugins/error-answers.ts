import { ChassisError, type ChassisNode } from '@chassis/core';
import type { FastifyError, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { errorBody, gatewayError } from '../errors.ts';
import { contextOf } from './request-context.ts';

export interface ErrorAnswersOptions {
  /** Where an internal failure is logged: the client sees only the request id. */
  log: ChassisNode['log'];
}

const plugin: FastifyPluginCallback<ErrorAnswersOptions> = (app, { log }, done) => {
  app.setErrorHandler(async (error, request, reply) => {
    const failure = gatewayError(error);
    contextOf(request).outcome = failure.code;
    if (failure.status >= 500 && (failure.code === 'INTERNAL' || failure.code === 'CONFIG')) {
      log.error({ err: error, requestId: request.id, url: request.url }, 'request failed inside the gateway');
    }
    if (failure.code === 'UNAUTHENTICATED') reply.header('www-authenticate', 'Bearer');
    const retryAfterMs = Number((failure.data as { retryAfterMs?: unknown } | undefined)?.retryAfterMs);
    if (Number.isFinite(retryAfterMs) && retryAfterMs > 0 && !reply.hasHeader('retry-after')) {
      reply.header('retry-after', String(Math.ceil(retryAfterMs / 1000)));
    }
    return reply.status(failure.status).type('application/json').send(errorBody(failure, request.id));
  });
  app.setNotFoundHandler(async (request, reply) => {
    contextOf(request).outcome = 'NOT_FOUND';
    return reply
      .status(404)
      .send(
        errorBody(new ChassisError('NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`), request.id),
      );
  });
  done();
};

/**
 * Every error in one shape (errors.ts) with the catalog's status: the error and not-found handlers, on
 * the root so that they answer for every route, the GraphQL ones included unless a scope sets its own.
 */
export const errorAnswers = fp(plugin, {
  name: 'chassis-error-answers',
  fastify: '5.x',
});

/**
 * Fastify's `frameworkErrors`: a URL that does not decode or a path parameter too long for the router is
 * refused before any hook or the error handler runs; without this Fastify answers in its own shape, with
 * no request id.
 */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const failure = gatewayError(error);
  contextOf(request).outcome = failure.code;
  reply
    .header('x-request-id', request.id)
    .status(failure.status)
    .type('application/json')
    .send(errorBody(failure, request.id));
}
