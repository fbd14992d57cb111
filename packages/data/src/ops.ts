import { ChassisError, type OpsAction, opsAction } from '@chassis/core';
import { z } from 'zod';
import type { Database } from './database.ts';
import { listParkedOutbox } from './outbox-parking.ts';
import type { OutboxRelay } from './outbox-relay.ts';
import { type SagaInstance, type SagaStatus, sagaStatuses } from './sagas/definition.ts';
import type { SagaRunner } from './sagas/runner.ts';

/**
 * What the data kit adds to a node's ops API: the outbox of each service it relays for, and the sagas of
 * each service that runs them here. A saga lives in its service's database, so any node running that
 * service's runner can show, retry or abort it; the `chassis` command asks one (`nodes` says which).
 */
export interface DataOpsSources {
  database(): Database | undefined;
  relays: ReadonlyMap<string, OutboxRelay>;
  runners: ReadonlyMap<string, SagaRunner>;
}

const serviceFilter = z.object({ service: z.string().optional() });
const sagaTarget = z.object({ id: z.string().min(1), service: z.string().optional() });

export function dataOpsActions(sources: DataOpsSources): Record<string, OpsAction> {
  const runnersOf = (service: string | undefined): [string, SagaRunner][] => {
    const all = [...sources.runners];
    if (service === undefined) return all;
    const picked = all.filter(([name]) => name === service);
    if (picked.length === 0) {
      throw new ChassisError(
        'NOT_FOUND',
        `No saga runner of service "${service}" on this node; it runs sagas for: ${all.map(([name]) => name).join(', ') || 'none'}`,
      );
    }
    return picked;
  };
  /** The runner whose tables hold instance `id` (and that drives its saga). */
  const runnerOf = async (id: string, service: string | undefined): Promise<[SagaRunner, SagaInstance]> => {
    for (const [, runner] of runnersOf(service)) {
      const instance = await runner.get(id);
      if (instance && runner.sagaNames.includes(instance.saga)) return [runner, instance];
    }
    throw new ChassisError('NOT_FOUND', `No saga instance "${id}" on this node's saga runners`, { data: { id } });
  };

  return {
    outbox: opsAction({
      description:
        'Per service whose outbox this node relays: events committed and not yet published, the age of the oldest, and those parked (refused by the transport)',
      input: serviceFilter,
      run: async ({ service }) => {
        const db = sources.database();
        return Promise.all(
          [...sources.relays]
            .filter(([name]) => service === undefined || name === service)
            .map(async ([name, relay]) => {
              const lag = await relay.lag();
              const parked = lag.parked > 0 && db ? await listParkedOutbox(db, name) : [];
              return { service: name, ...lag, parkedEvents: parked.slice(0, 100) };
            }),
        );
      },
    }),
    'sagas.list': opsAction({
      description: 'Saga instances, newest first, of the services that run sagas on this node (counts per status too)',
      input: z.object({
        service: z.string().optional(),
        saga: z.string().optional(),
        status: z.enum(sagaStatuses as [SagaStatus, ...SagaStatus[]]).optional(),
        limit: z.coerce.number().int().min(1).max(1000).default(50),
      }),
      run: async ({ service, saga, status, limit }) =>
        Promise.all(
          runnersOf(service).map(async ([name, runner]) => ({
            service: name,
            sagas: runner.sagaNames,
            counts: await runner.counts(),
            instances: await runner.list({
              ...(saga === undefined ? {} : { saga }),
              ...(status === undefined ? {} : { status }),
              limit,
            }),
          })),
        ),
    }),
    'sagas.show': opsAction({
      description: 'One saga instance with its whole history',
      input: sagaTarget,
      run: async ({ id, service }) => (await runnerOf(id, service))[1],
    }),
    'sagas.retry': opsAction({
      description: 'Sends a failed saga back to its compensations, from the one that gave up, with fresh attempts',
      mutates: true,
      input: sagaTarget,
      run: async ({ id, service }) => (await runnerOf(id, service))[0].retry(id),
    }),
    'sagas.abort': opsAction({
      description: "Makes a running saga compensate, its current step's compensation first",
      mutates: true,
      input: sagaTarget.extend({ reason: z.string().max(500).optional() }),
      run: async ({ id, service, reason }) => (await runnerOf(id, service))[0].abort(id, reason),
    }),
  };
}
