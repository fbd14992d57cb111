import { ChassisError, type Identity, toChassisError } from '@chassis/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GraphQLResolveInfo, GraphQLScalarType } from 'graphql';
import type { GraphqlExecutor } from './graphql-execution.ts';
import type { CustomRouteContext } from './routes.ts';
import type { GatewayTools } from './tools.ts';

/**
 * GraphQL at the edge, on graphql-js. Resolvers call actions as the HTTP request's caller, so a service
 * sees the same token, request id and deadline as behind a REST route. Errors the GraphQL layer owns (a
 * query that does not parse or validate, a token that does not verify, a failed field) are answered as
 * GraphQL responses with the catalog's code in `extensions.code`; failures of the HTTP request itself (rate
 * limit, a body that is not JSON or is too large) are the gateway's, answered in its error shape.
 *
 * graphql-js and the schema are loaded on the endpoint's first request, not when the gateway starts: a
 * gateway whose clients use REST only (SimpleBank's load) is spared them. Measured in a process that
 * loads Chassis and Fastify: mercurius with graphql-js, loaded at start as they were, 6.4 MB more heap
 * and 8–15 MB more RSS; SimpleBank's edge after the load 147–148 → 138–139 MB. graphql-js alone is 2 of
 * those MB of heap, and is what the first request waits for, once: 0.1–0.4 s to import and 0.02–0.4 s
 * to build SimpleBank's schema and check its first query, on a 2-core machine at load average 15–20.
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
 * `createGateway({ …, register: graphqlEndpoint({ schema, resolvers }) })`. GET and POST at `path`: a
 * query by either (GET's `variables` as JSON in the query string), a mutation by POST only.
 */
export function graphqlEndpoint(
  options: GraphqlEndpointOptions,
): (app: FastifyInstance, tools: GatewayTools) => Promise<void> {
  return async (app, tools) => {
    let loading: Promise<GraphqlExecutor> | undefined;
    // A schema that does not build fails its first request (CONFIG, 500) and the next one tries again.
    const executorOf = () =>
      (loading ??= import('./graphql-execution.ts')
        .then(({ graphqlExecutor }) => graphqlExecutor(options.schema, options.resolvers, options.maxDepth ?? 10))
        .catch((error: unknown) => {
          loading = undefined;
          throw error;
        }));
    const answer = async (request: FastifyRequest, reply: FastifyReply) => {
      const executor = await executorOf();
      const prepared = executor.prepare({
        method: request.method,
        params: request.method === 'GET' ? request.query : request.body,
      });
      if ('status' in prepared) {
        if (prepared.outcome) tools.recordOutcome(request, prepared.outcome);
        return reply.status(prepared.status).send(prepared.body);
      }
      let context: GraphqlContext;
      try {
        context = await contextFor(request, tools);
      } catch (error) {
        // The caller or the deadline: nothing is executed, the whole request is refused in GraphQL's shape.
        const refusal = toChassisError(error);
        tools.recordOutcome(request, refusal.code);
        if (refusal.code === 'UNAUTHENTICATED') reply.header('www-authenticate', 'Bearer');
        return reply.status(refusal.status).send(executor.refusal(refusal, request.id));
      }
      const result = await executor.run(prepared, context, request.id);
      if (result.outcome) tools.recordOutcome(request, result.outcome);
      for (const { cause, path } of result.internalFailures) {
        tools.log.error({ err: cause, requestId: request.id, path }, 'a GraphQL field failed');
      }
      return reply.status(result.status).send(result.body);
    };
    const path = `${tools.prefix}${options.path ?? '/graphql'}`;
    app.get(path, answer);
    app.post(path, answer);
    if (options.graphiql) {
      app.get(`${tools.prefix}/graphiql`, { config: { rateLimit: false } }, async (_request, reply) =>
        reply.type('text/html; charset=utf-8').send(graphiqlPage(path)),
      );
    }
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

/** GraphiQL, from a CDN, pointed at the endpoint. */
function graphiqlPage(endpoint: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GraphiQL</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css">
<style>body{margin:0;height:100vh}#graphiql{height:100vh}</style></head><body><div id="graphiql">Loading…</div>
<script src="https://unpkg.com/react@18/umd/react.production.min.js" crossorigin></script>
<script src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js" crossorigin></script>
<script src="https://unpkg.com/graphiql@3/graphiql.min.js" crossorigin></script>
<script>
const fetcher = GraphiQL.createFetcher({ url: new URL(${JSON.stringify(endpoint)}, location.href).href });
ReactDOM.createRoot(document.getElementById('graphiql')).render(React.createElement(GraphiQL, { fetcher }));
</script></body></html>`;
}
