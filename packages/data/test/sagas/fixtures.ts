import { randomBytes } from 'node:crypto';
import {
  Database,
  type SagaDefinition,
  type SagaHistoryEntry,
  SagaRunner,
  type SagaRunnerOptions,
} from '@chassis/data';
import type { DatabaseTarget } from '@chassis/testing';

/** A sell order as the bank's sagas take it. */
export const order = (orderId: string, quantity = 10) => ({
  orderId,
  accountId: '101',
  symbol: 'BHP',
  quantity,
  priceCents: 9172,
});

/** `kind step attempt` per entry: the history as a test reads it. */
export const trace = (history: SagaHistoryEntry[]) =>
  history.map((entry) => [entry.kind, entry.step, entry.attempt].filter((part) => part !== undefined).join(' '));

/** A promise a test opens when it chooses. */
export function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/**
 * Saga runners on new databases of `target`, each on a service of its own named `<prefix>_<hex>`, and the
 * other nodes of that service; `close` stops them all and closes their databases.
 */
export function sagaNodes(target: DatabaseTarget, prefix: string) {
  const runners: SagaRunner[] = [];
  const open: Database[] = [];

  async function setup(sagas: SagaDefinition<unknown, unknown>[], options: Partial<SagaRunnerOptions> = {}) {
    const url = await target.newDatabase();
    const db = await Database.open(url);
    open.push(db);
    const service = `${prefix}_${randomBytes(3).toString('hex')}`;
    const runner = new SagaRunner(db, { service, sagas, sweepMs: 0, ...options });
    runners.push(runner);
    await runner.install();
    /** Another node on the same database (PGlite lives in this process: the same client), or on `on`. */
    const node = async (more: Partial<SagaRunnerOptions> = {}, on?: Database) => {
      let other = on ?? db;
      if (!on && target.name !== 'pglite') {
        other = await Database.open(url);
        open.push(other);
      }
      const created = new SagaRunner(other, { service, sagas, sweepMs: 0, ...more });
      runners.push(created);
      return created;
    };
    return { db, runner, service, node };
  }

  async function close() {
    await Promise.allSettled(runners.map((runner) => runner.stop()));
    await Promise.allSettled(open.map((db) => db.close()));
  }

  return { setup, close };
}
