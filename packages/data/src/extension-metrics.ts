import { Counter, Gauge, type Registry } from 'prom-client';
import type { OutboxLag } from './outbox.ts';
import type { OutboxRelay } from './outbox-relay.ts';
import { sagaStatuses } from './sagas/definition.ts';
import type { SagaRunner } from './sagas/runner.ts';
import type { DatabaseUsage } from './usage.ts';

/** What the data extension's metrics read when scraped. */
export interface DataMetricSources {
  usage: DatabaseUsage;
  relays: ReadonlyMap<string, OutboxRelay>;
  runners: ReadonlyMap<string, SagaRunner>;
}

/**
 * The data kit's metrics in a node's registry: statements and transactions, the outbox's backlog and
 * parked events, sagas by status. All but `parked` are read from their sources when scraped, so nothing
 * is added on the query path; `parked` counts as the relays park.
 */
export function registerDataMetrics(registry: Registry, { usage, relays, runners }: DataMetricSources) {
  const registers = [registry];
  // One look at each outbox a scrape: the three outbox gauges collect together (the registry gathers its
  // metrics at once) and share it, where each asked the same query of its own.
  let lagsInFlight: Promise<(readonly [string, OutboxLag])[]> | undefined;
  const outboxLags = () => {
    lagsInFlight ??= lagsOneAtATime(relays).finally(() => {
      lagsInFlight = undefined;
    });
    return lagsInFlight;
  };
  const parked = new Counter({
    name: 'chassis_outbox_parked_total',
    help: 'Events a service’s outbox relay parked: refused by the transport while later events went',
    labelNames: ['service', 'event'] as const,
    registers,
  });
  new Counter({
    name: 'chassis_db_statements_total',
    help: 'Statements this node sent to its database (BEGIN, COMMIT and ROLLBACK aside)',
    registers,
    collect() {
      this.reset();
      this.inc(usage.statements);
    },
  });
  new Counter({
    name: 'chassis_db_transactions_total',
    help: 'Transactions this node ran in its database, by how they ended; a statement sent outside a transaction is one',
    labelNames: ['outcome'] as const,
    registers,
    collect() {
      this.reset();
      this.inc({ outcome: 'commit' }, usage.commits);
      this.inc({ outcome: 'rollback' }, usage.rollbacks);
    },
  });
  new Gauge({
    name: 'chassis_outbox_pending',
    help: 'Events committed to a service’s outbox and not yet published',
    labelNames: ['service'] as const,
    registers,
    async collect() {
      this.reset();
      for (const [service, lag] of await outboxLags()) this.set({ service }, lag.pending);
    },
  });
  new Gauge({
    name: 'chassis_outbox_lag_seconds',
    help: 'Age of the oldest unpublished event in a service’s outbox',
    labelNames: ['service'] as const,
    registers,
    async collect() {
      this.reset();
      for (const [service, lag] of await outboxLags()) this.set({ service }, lag.oldestAgeMs / 1000);
    },
  });
  new Gauge({
    name: 'chassis_saga_instances',
    help: 'Saga instances of the services that run sagas here (runSagas), by saga and status',
    labelNames: ['service', 'saga', 'status'] as const,
    registers,
    async collect() {
      this.reset();
      for (const [service, runner] of runners) {
        // Every status of every saga from 0, so a dashboard shows a flat line, not "no data", before the first.
        for (const saga of runner.sagaNames) {
          for (const status of sagaStatuses) this.set({ service, saga, status }, 0);
        }
        for (const { saga, status, count } of await runner.counts()) this.set({ service, saga, status }, count);
      }
    },
  });
  new Gauge({
    name: 'chassis_saga_oldest_unfinished_seconds',
    help: 'Per saga, seconds since the last step boundary of its unfinished instance that has waited longest (0: none unfinished); the SagasStuck alert',
    labelNames: ['service', 'saga'] as const,
    registers,
    async collect() {
      this.reset();
      for (const [service, runner] of runners) {
        for (const { saga, seconds } of await runner.oldestUnfinishedSeconds()) this.set({ service, saga }, seconds);
      }
    },
  });
  new Gauge({
    name: 'chassis_outbox_parked',
    help: 'Events parked in a service’s outbox, waiting for replayParkedOutbox (the OutboxEventsParked alert)',
    labelNames: ['service'] as const,
    registers,
    async collect() {
      this.reset();
      for (const [service, lag] of await outboxLags()) this.set({ service }, lag.parked);
    },
  });
  return { parked };
}

/**
 * Each relay's lag, one query after another: a node that hosts many services (SimpleBank's edge has nine
 * relays) would otherwise take as many pooled connections at once for a scrape, away from its requests.
 */
async function lagsOneAtATime(relays: ReadonlyMap<string, OutboxRelay>): Promise<(readonly [string, OutboxLag])[]> {
  const lags: (readonly [string, OutboxLag])[] = [];
  for (const [service, relay] of relays) lags.push([service, await relay.lag()]);
  return lags;
}
