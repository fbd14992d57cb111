export { typescriptArgs } from './child.ts';
export { removeNatsTestState, removeRabbitmqTestState } from './cleanup.ts';
export {
  amqpTarget,
  memoryTarget,
  natsTarget,
  type TestCluster,
  type TransportTarget,
  useCluster,
} from './cluster.ts';
export { type ComposeFile, type ComposeProject, type ComposeService, composeProject } from './compose.ts';
export { type DatabaseTarget, pgliteTarget, postgresTarget } from './databases.ts';
export { choiceFromEnv, integerFromEnv } from './env.ts';
export { requestJson } from './http.ts';
export {
  freePort,
  infraRequired,
  reachable,
  restartNats,
  restartPostgres,
  restartRabbitmq,
  type Server,
  type ServerName,
  servers,
  skipUnlessInstalled,
  skipUnlessUp,
  waitUntil,
} from './infra.ts';
export { type ProcessGroup, type ProcessSpec, processGroup, type RunningProcess, waitForHttp } from './processes.ts';
export {
  type LivePrometheus,
  type NamedQuery,
  type PrometheusAnswer,
  type PrometheusOptions,
  type PrometheusRule,
  type PrometheusRuleGroup,
  type PrometheusTarget,
  startPrometheus,
} from './prometheus.ts';
export {
  makeTestPki,
  startPostgresTlsProxy,
  startTlsNats,
  startTlsProxy,
  type TestPki,
  type TlsNatsServer,
  type TlsProxy,
} from './tls.ts';
export { type OpenableTransaction, rollbackIfOpen } from './transactions.ts';
