export {
  type ComposeOptions,
  type ComposePart,
  type Composition,
  compose,
  type PartBudget,
  type PartError,
} from './compose.ts';
export { type DeadlineOptions, requestDeadline } from './deadline.ts';
export {
  type ErrorBody,
  errorBodySchema,
  IdempotencyKeyReused,
  PayloadTooLarge,
  UnsupportedMediaType,
} from './errors.ts';
export {
  createGateway,
  type Gateway,
  type GatewayOptions,
  type RateLimitSettings,
} from './gateway.ts';
export {
  type GraphqlContext,
  type GraphqlEndpointOptions,
  type GraphqlResolver,
  type GraphqlResolvers,
  graphqlEndpoint,
} from './graphql.ts';
export {
  type IdempotencyStore,
  MemoryIdempotencyStore,
  RedisIdempotencyStore,
  type StoredAnswer,
} from './idempotency.ts';
export { type OpenApiInfo, openApiDocument } from './openapi.ts';
export {
  type ActionRoute,
  type CustomRoute,
  type CustomRouteContext,
  type HttpMethod,
  ownedBy,
  type Route,
  type RouteAuth,
  type RouteOptions,
  type RouteRequest,
  route,
} from './routes.ts';
export type { GatewayTools } from './tools.ts';
