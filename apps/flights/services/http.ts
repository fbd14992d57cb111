import {
  type ActionContract,
  ChassisError,
  type ChassisNode,
  fieldErrors,
  type InputOf,
  type OutputOf,
  toChassisError,
} from '@chassis/core';
import Fastify, { type FastifyInstance } from 'fastify';
import type { ServiceHealth } from './health.ts';

/**
 * A service's own HTTP API, the book's (ms-flights on 8081, ms-reservations on 8082), beside the BFF:
 * `/ping`, `/health` (health+json), `/openapi.json`, and routes that call the service's actions through
 * the node — so an HTTP request and a BFF call take the same path to the handler. Errors come back in the
 * book's shapes, which `answer` makes from the chassis error.
 */
export interface ServiceHttpOptions {
  node: ChassisNode;
  health: ServiceHealth;
  document: Record<string, unknown>;
  /** The status and body of an error answer, in the service's own shape. */
  answer: (error: ChassisError) => { status: number; body: unknown };
  routes: (app: FastifyInstance, call: ServiceCall) => void;
}

export type ServiceCall = <C extends ActionContract>(contract: C, raw: unknown) => Promise<OutputOf<C>>;

export async function serviceHttp(options: ServiceHttpOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(async (error, request, reply) => {
    const failure = answerable(error);
    if (failure.status >= 500 && failure.code === 'INTERNAL') {
      options.node.log.error({ err: error, url: request.url }, 'request failed inside the service');
    }
    const answer = options.answer(failure);
    return reply.status(answer.status).send(answer.body);
  });
  app.setNotFoundHandler(async (request, reply) => {
    const answer = options.answer(new ChassisError('NOT_FOUND', `No route ${request.method} ${request.url}`));
    return reply.status(answer.status).send(answer.body);
  });
  app.get('/ping', async () => ({ status: 'pass' }));
  app.get('/health', async (_request, reply) => {
    const body = await options.health.report();
    return reply
      .status(body.status === 'pass' ? 200 : 503)
      .type('application/health+json')
      .send(JSON.stringify(body));
  });
  app.get('/openapi.json', async () => options.document);
  const call: ServiceCall = async (contract, raw) => {
    const parsed = contract.input.safeParse(raw);
    if (!parsed.success) {
      const fields = fieldErrors(parsed.error);
      throw new ChassisError('VALIDATION', fields.map((f) => `${f.path}: ${f.message}`).join('; '), {
        data: { fields },
      });
    }
    return options.node.call(contract, parsed.data as InputOf<typeof contract>, { timeoutMs: 5000 });
  };
  options.routes(app, call);
  return app;
}

/** Fastify's own client errors (a body that is not JSON) are bad input too, never a 500. */
function answerable(error: unknown): ChassisError {
  if (error instanceof ChassisError) return error;
  const status = (error as { statusCode?: unknown })?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new ChassisError('VALIDATION', error instanceof Error ? error.message : String(error), { status });
  }
  return toChassisError(error);
}

/** `{errors: [{field, message}]}`, the book's 400 and 404 body, with the error's status. */
export function errorList(error: ChassisError): {
  status: number;
  body: { errors: { field?: string; message: string }[] };
} {
  const fields = (error.data as { fields?: { path: string; message: string }[] } | undefined)?.fields;
  if (error.code === 'VALIDATION' && fields?.length) {
    return { status: 400, body: { errors: fields.map((f) => ({ field: f.path, message: f.message })) } };
  }
  const internal = error.status >= 500 && error.code === 'INTERNAL';
  return { status: error.status, body: { errors: [{ message: internal ? 'Internal error' : error.message }] } };
}
