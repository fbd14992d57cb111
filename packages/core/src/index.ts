export {
  envKnownPort,
  envLimit,
  envNumber,
  envPort,
  loadConfig,
  type NodeConfig,
  nodeConfigSchema,
  transportTlsFiles,
} from './config.ts';
export { type CallOptions, type Context, currentContext, type EmitOptions } from './context.ts';
export {
  type ActionContract,
  type AnyContract,
  action,
  type EventContract,
  event,
  type FieldError,
  fieldErrors,
  type InputOf,
  type OutputOf,
  type PayloadInputOf,
  type PayloadOf,
} from './contracts.ts';
export { ContentType, Header, type Serializer } from './envelope.ts';
export {
  ChassisError,
  type ChassisErrorCode,
  chassisError,
  defineError,
  type ErrorSpec,
  errorCatalog,
  isChassisError,
  type SerializedError,
  toChassisError,
} from './errors.ts';
export type { Invocation, NodeExtension } from './extension.ts';
export {
  type Identity,
  type IdentityVerifier,
  type JwtOptions,
  jwtVerifier,
  requireIdentity,
  requireRole,
  signToken,
  systemToken,
  tokenSecret,
} from './identity.ts';
export { createLogger, type Logger, type LoggerOptions } from './logger.ts';
export { redeliveryDelay } from './node/disposition.ts';
export { httpClientAttributes, recordHttpAnswer, recordHttpFailure } from './node/http-client.ts';
export {
  ChassisNode,
  createNode,
  type NodeOptions,
  type NodeState,
  type OutsideCallOptions,
} from './node/node.ts';
export { defaultNodeId } from './node-id.ts';
export { BoundHistogram } from './observability/bound-histogram.ts';
export { EnvironmentFlagProvider } from './observability/flags.ts';
export {
  type CheckResult,
  type HealthCheck,
  type HealthEntry,
  type HealthReport,
  type HealthStatus,
  runChecks,
} from './observability/health.ts';
export { NodeMetrics } from './observability/metrics.ts';
export type { StoredSpan, TraceSummary } from './observability/span-store.ts';
export {
  type Attributes,
  InMemorySpanExporter,
  noSpan,
  type Span,
  type SpanExporter,
  SpanKind,
  SpanStatusCode,
  Tracing,
  type TracingOptions,
} from './observability/tracing.ts';
export {
  callOps,
  callOpsHttp,
  type OpsAction,
  type OpsCallOptions,
  type OpsCredentials,
  opsAction,
  opsServiceName,
} from './ops.ts';
export { type ParsedInput, parseInput } from './parsed-input.ts';
export {
  type BreakerPolicy,
  type BreakerState,
  type BulkheadPolicy,
  type CachePolicy,
  type CacheStore,
  type CallPolicies,
  CircuitBreaker,
  cacheKey,
  defaultCallPolicies,
  type Fallback,
  fullJitterDelay,
  type HandlerPolicies,
  MemoryCacheStore,
  type PolicyDefaults,
  PolicyEngine,
  type RateLimitOptions,
  RedisCacheStore,
  type RetryBudgetOptions,
  type RetryPolicy,
} from './policies/index.ts';
export { type NodeInfo, type RegisteredNode, Registry } from './registry.ts';
export { drainOnSignals, identityFrom, type RunNodeOptions, runNode, selectServices } from './run.ts';
export {
  type ActionHandler,
  defineService,
  type EventHandlerDefinition,
  type EventHandlerOptions,
  every,
  handle,
  on,
  type ScheduleDefinition,
  type ScheduleOptions,
  type ServiceDefinition,
  type ServiceHandle,
  type ServiceSpec,
  type TopologyEntry,
  topology,
} from './service.ts';
export {
  hasTlsFiles,
  readTlsFiles,
  type TlsFailureContext,
  type TlsFailureReason,
  type TlsFiles,
  type TlsMaterial,
  type TlsSettingNames,
  TRANSPORT_TLS_SETTINGS,
  tlsFailure,
} from './tls.ts';
export { type CreateTransportOptions, createTransport } from './transports/index.ts';
export {
  defaultMemoryBroker,
  MemoryBroker,
  type MemoryTransportOptions,
  memoryTransport,
} from './transports/memory.ts';
// What only transport authors need is in `@chassis/core/transport` (transports/kit.ts).
export type {
  OrderedEvent,
  PublishedInOrder,
  Transport,
  TransportStatus,
  WireMessage,
} from './transports/transport.ts';
