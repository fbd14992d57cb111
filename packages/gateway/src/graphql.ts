import { ChassisError, type Identity, toChassisError } from '@chassis/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  type ExecutionResult,
  type FormattedExecutionResult,
  GraphQLError,
  type GraphQLFormattedError,
  type GraphQLResolveInfo,
  type GraphQLScalarType,
} from 'graphql';
import mercurius, { type IResolvers } from 'mercurius';
import { errorBody } from './errors.ts';
import type { CustomRouteContext } from './routes.ts';
import type { GatewayTools } from './tools.ts';

/**
 * GraphQL at the edge, on mercurius. Resolvers call actions as the HTTP request's caller, so a service
 * sees the same token, request id and deadline as behind a REST route. Errors the GraphQL layer owns (a
 * query that does not parse or validate, a token that does not verify, a failed field) are answered as
 * GraphQL responses with the catalog's code in `extensions.code`; failures of the HTTP request itself (rate
 * limit, a body that is not JSON or is too large) are the gateway's, answered in its error shape.
 */

/** What every resolver gets as its third argument, one per HTTP request. */
export interface GraphqlContext {
  /** Calls an action with the caller's token, request id, trace context and the request's deadline. */
  call: CustomRouteContext['call'];
  /** The verified caller; undefined for an anonymous request (a token that does not verify fails it whole). */
  user: Identity | undefined;
  /** The caller, or `UNAUTHENTICATED` for this field: what a field that is not public starts with. */
  requireUser(): Identity;
  requestId: string;
  /** Absolute epoch ms after which nobody waits for the answer. */
  deadline: number;
}

/**
 * A field's resolver. Declared as a method so its parameters are checked both ways: a resolver may name
 * the types of its parent and arguments, `(account: Account, args: { first: number }, ctx) => …`.
 */
export type GraphqlResolver = {
  resolve(source: unknown, args: Record<string, unknown>, context: GraphqlContext, info: GraphQLResolveInfo): unknown;
}['resolve'];

/** Resolvers by type then field, `{ Query: { accounts }, Account: { orders } }`, and custom scalars by name. */
export type GraphqlResolvers = Record<string, Record<string, GraphqlResolver> | GraphQLScalarType>;

export interface GraphqlEndpointOptions {
  /** The schema in SDL. */
  schema: string;
  resolvers: GraphqlResolvers;
  /** Default `/graphql` (GET and POST). */
  path?: string;
  /** Serve the GraphiQL explorer at `/graphiql`. Default false. */
  graphiql?: boolean;
  /**
   * The deepest query accepted. Default 10: the rate limit counts requests, and one deeply nested query
   * can cost as much as thousands of calls.
   */
  maxDepth?: number;
}

/**
 * A GraphQL endpoint, as createGateway's `register` hook:
 * `createGateway({ …, register: graphqlEndpoint({ schema, resolvers }) })`.
 */
export function graphqlEndpoint(
  options: GraphqlEndpointOptions,
): (app: FastifyInstance, tools: GatewayTools) => Promise<void> {
  return async (app, tools) => {
    // Errors thrown while the context is built (the caller, the deadline) are GraphQL's to answer.
    const refusals = new WeakSet<ChassisError>();
    // Encapsulated, so the hooks and the error handler below concern the GraphQL routes only.
    await app.register(async (scope) => {
      scope.setErrorHandler(async (error, request, reply) => {
        const failure = error instanceof ChassisError && refusals.has(error) ? error : mercuriusFailure(error);
        if (!failure) throw error; // to the gateway's error handler
        tools.recordOutcome(request, failure.code);
        if (failure.code === 'UNAUTHENTICATED') reply.header('www-authenticate', 'Bearer');
        return reply.status(failure.status).send({ errors: requestErrors(error, failure, request.id) });
      });
      await scope.register(mercurius, {
        schema: options.schema,
        resolvers: options.resolvers as IResolvers,
        path: `${tools.prefix}${options.path ?? '/graphql'}`,
        graphiql: options.graphiql ?? false,
        queryDepth: options.maxDepth ?? 10,
        // Off: errors outside execution go to the handler above rather than mercurius's.
        errorHandler: false,
        errorFormatter: (execution, context) => {
          const request = context.reply.request;
          const formatted = formatExecution(execution, request.id);
          const codes = (formatted.response.errors ?? []).map((e) => String(e.extensions?.code ?? 'INTERNAL'));
          if (codes.length > 0) tools.recordOutcome(request, codes[0]!);
          for (const error of execution.errors) {
            const cause = error.originalError;
            if (!(cause instanceof ChassisError) || cause.code === 'INTERNAL') {
              tools.log.error(
                { err: cause ?? error, requestId: request.id, path: error.path },
                'a GraphQL field failed',
              );
            }
          }
          return formatted;
        },
        context: async (request) => {
          try {
            return await contextFor(request, tools);
          } catch (error) {
            const refusal = toChassisError(error);
            refusals.add(refusal);
            throw refusal;
          }
        },
      });
    });
  };
}

async function contextFor(request: FastifyRequest, tools: GatewayTools): Promise<GraphqlContext> {
  const user = await tools.identify(request);
  const deadline = tools.deadlineOf(request);
  return {
    call: (contract, input, callOptions) => tools.callFor(request, contract, input, callOptions),
    user,
    requireUser() {
      if (!user) {
        throw new ChassisError('UNAUTHENTICATED', 'This field needs a bearer token (Authorization: Bearer <token>)');
      }
      return user;
    },
    requestId: request.id,
    deadline,
  };
}

/** mercurius's refusal of a request (a query that does not parse or validate, a mutation by GET), if it is one. */
function mercuriusFailure(error: unknown): ChassisError | undefined {
  const { code, statusCode } = (error ?? {}) as { code?: unknown; statusCode?: unknown };
  if (typeof code !== 'string' || !code.startsWith('MER_ERR_')) return undefined;
  const message = error instanceof Error ? error.message : code;
  return new ChassisError('VALIDATION', message, { status: typeof statusCode === 'number' ? statusCode : 400 });
}

/** The errors of a request refused before execution: a syntax or validation error names each problem. */
function requestErrors(error: unknown, failure: ChassisError, requestId: string): GraphQLFormattedError[] {
  const problems = (error as { errors?: unknown }).errors;
  if (Array.isArray(problems) && problems.length > 0) {
    return problems.map((problem: unknown) => ({
      message: problem instanceof Error ? problem.message : String(problem),
      ...(problem instanceof GraphQLError && problem.locations ? { locations: problem.locations } : {}),
      extensions: { code: failure.code },
    }));
  }
  return [chassisFormatted(failure, requestId)];
}

/** Execution results: a failed field is an entry of `errors` beside the data of the others, with status 200. */
function formatExecution(
  execution: ExecutionResult & Required<Pick<ExecutionResult, 'errors'>>,
  requestId: string,
): { statusCode: number; response: FormattedExecutionResult } {
  // No data at all: graphql refused the request before executing it (variables that do not fit, say).
  if (execution.data === undefined) {
    return {
      statusCode: 400,
      response: {
        errors: execution.errors.map((error) => ({ ...error.toJSON(), extensions: { code: 'VALIDATION' } })),
      },
    };
  }
  const errors = execution.errors.map((error): GraphQLFormattedError => {
    const cause = error.originalError;
    const where = {
      ...(error.locations ? { locations: error.locations } : {}),
      ...(error.path ? { path: error.path } : {}),
    };
    // graphql's own complaint about what a resolver returned (a value its type cannot represent): the
    // server's fault, and the message is about the schema, nothing secret.
    if (cause === undefined || cause instanceof GraphQLError) {
      return { message: error.message, ...where, extensions: { code: 'INTERNAL' } };
    }
    return { ...chassisFormatted(toChassisError(cause), requestId), ...where };
  });
  return { statusCode: 200, response: { data: execution.data, errors } };
}

/** A ChassisError as a GraphQL error: the gateway's code, message and details, and never a stack. */
function chassisFormatted(error: ChassisError, requestId: string): GraphQLFormattedError {
  const { code, message, details } = errorBody(error, requestId).error;
  return { message, extensions: { code, ...(details === undefined ? {} : { details }) } };
}
