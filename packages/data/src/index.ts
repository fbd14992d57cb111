export { createDatabaseIfMissing } from './create-database.ts';
export {
  type AnyTables,
  Database,
  DatabaseFeatureUnsupported,
  type DatabaseKind,
  type DatabaseOptions,
  quoteIdentifier,
  sql,
} from './database.ts';
export {
  type AppendOptions,
  type AppendResult,
  type EventDataOf,
  type EventSchemas,
  EventStore,
  type EventStoreOptions,
  type ExpectedVersion,
  eventsChannel,
  LOG_START,
  type LogPosition,
  logPositionOf,
  type NewEvent,
  type NewEventOf,
  type Snapshot,
  type StoredEvent,
  type StoredEventOf,
  WrongExpectedVersion,
} from './event-store.ts';
export {
  commit,
  DataExtension,
  type DataExtensionOptions,
  database,
  dataExtension,
  executeLast,
  openEventStore,
  type RunSagasOptions,
  runSagas,
  startSaga,
} from './extension.ts';
export { claimInbox, InboxNotInstalled, installInbox, isInInbox, pruneInbox } from './inbox.ts';
export { installServiceSchema, migrateOnly } from './install-service.ts';
export { MigrationFailed, type MigrationReport, type MigrationsSpec, migrate } from './migrations.ts';
export {
  installOutbox,
  type OutboxLag,
  type OutboxMessage,
  OutboxNotInstalled,
  outboxChannel,
  outboxLag,
  pruneOutbox,
  writeOutbox,
} from './outbox.ts';
export { listParkedOutbox, type ParkedOutboxRow, replayParkedOutbox } from './outbox-parking.ts';
export { OutboxRelay, type OutboxRelayOptions, type Publish, type PublishInOrder } from './outbox-relay.ts';
export { type PostgresSslMode, type PostgresTls, postgresTls } from './postgres-tls.ts';
export {
  defineProjection,
  type Projection,
  ProjectionFailed,
  type ProjectionHandler,
  ProjectionRunner,
  type ProjectionRunnerOptions,
  type ProjectionSource,
  type ProjectionSpec,
} from './projections.ts';
export {
  defineSaga,
  isTerminalSagaStatus,
  type SagaBoundary,
  type SagaBoundaryEvent,
  type SagaCall,
  type SagaDefinition,
  type SagaError,
  type SagaHistoryEntry,
  type SagaHistoryKind,
  type SagaInstance,
  type SagaRetryPolicy,
  type SagaStatus,
  type SagaStep,
  type SagaSummary,
  type StepContext,
  sagaStatuses,
} from './sagas/definition.ts';
export { SagaRunner, type SagaRunnerOptions, type SagaStartOptions } from './sagas/runner.ts';
export type { SagaListFilter } from './sagas/store.ts';
export { UnitOfWork } from './unit-of-work.ts';
export type { DatabaseUsage } from './usage.ts';
