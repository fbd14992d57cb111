import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import {
  Database,
  type SagaDefinition,
  type SagaHistoryEntry,
  SagaRunner,
  type SagaRunnerOptions,
  sql,
} from '@chassis/data';
import { type DatabaseTarget, waitUntil } from '@chassis/testing';
import { FakeBank, sellOrderSaga } from './bank.ts';

const order = (orderId: string) => ({ orderId, accountId: '101', symbol: 'BHP', quantity: 10, priceCents: 9172 });

/** `kind step attempt` per entry: the history as a test reads it. */
const trace = (history: SagaHistoryEntry[]) =>
  history.map((entry) => [entry.kind, entry.step, entry.attempt].filter((part) => part !== undefined).join(' '));

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/**
 * Leases, takeovers and sweeps with two nodes in this one process on one database: what the SIGKILL
 * test (child processes, out of a mutation run's sight) checks from outside, checked here from inside.
 */
export function sagaTakeoverSuite(target: DatabaseTarget): void {
  describe(`saga leases, takeovers and sweeps: ${target.name}`, { skip: target.skip }, () => {
    const runners: SagaRunner[] = [];
    const open: Database[] = [];
    const gates: ReturnType<typeof gate>[] = [];
    /** A gate the suite opens at its end if a failed test left it shut, so that the runners can stop. */
    const shut = () => {
      const made = gate();
      gates.push(made);
      return made;
    };
    after(async () => {
      for (const left of gates) left.open();
      await Promise.allSettled(runners.map((runner) => runner.stop()));
      await Promise.allSettled(open.map((db) => db.close()));
      await target.cleanup();
    });

    async function setup(sagas: SagaDefinition<unknown, unknown>[], options: Partial<SagaRunnerOptions> = {}) {
      const url = await target.newDatabase();
      const db = await Database.open(url);
      open.push(db);
      const service = `lease_${randomBytes(3).toString('hex')}`;
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
      const instances = sql.id(service, 'chassis_sagas');
      /** The instances table goes away and comes back: every statement on it fails meanwhile. */
      const moveTable = async (where: 'away' | 'back') => {
        const [from, to] =
          where === 'away' ? ['chassis_sagas', 'chassis_sagas_away'] : ['chassis_sagas_away', 'chassis_sagas'];
        await sql`alter table ${sql.id(service, from)} rename to ${sql.id(to)}`.execute(db.kysely);
      };
      return { db, runner, service, node, instances, moveTable };
    }

    it(`[${target.name}] a node renews its lease while a step outlives it: no other node takes the instance over`, async () => {
      const bank = new FakeBank();
      const slow = shut();
      let signal: AbortSignal | undefined;
      const saga = sellOrderSaga(bank, {
        before: {
          place_order: async (ctx) => {
            signal = ctx.signal;
            await slow.opened;
          },
        },
      });
      const { runner, node } = await setup([saga], { nodeId: 'node-a', leaseMs: 1_200 });
      const id = await runner.start(saga, order('r-1'));
      await waitUntil(() => signal !== undefined, { what: 'the order being placed' });
      const first = (await runner.get(id))!.leaseUntil!;
      const other = await node({ nodeId: 'node-b', leaseMs: 1_200, sweepMs: 50 });
      assert.deepEqual(await other.resumeAll(), [], 'not while the lease holds');
      runner.resume(id);
      // More than a lease past the first one: without renewals it had lapsed and node-b's sweeps taken it.
      await waitUntil(async () => ((await runner.get(id))?.leaseUntil?.getTime() ?? 0) >= first.getTime() + 1_300, {
        what: 'the lease renewed past its first term',
        timeoutMs: 8_000,
        intervalMs: 50,
      });
      const held = await runner.get(id);
      assert.equal(held?.owner, 'node-a');
      assert.equal(signal!.aborted, false, 'a renewal that keeps the lease does not abort the step');
      slow.open();
      const done = await runner.wait(id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(trace(done.history), [
        'saga_created',
        'step_started reserve_shares 1',
        'step_completed reserve_shares 1',
        'step_started place_order 1',
        'step_completed place_order 1',
        'step_started charge_fee 1',
        'step_completed charge_fee 1',
        'saga_completed',
      ]);
      assert.ok(
        done.history.every((entry) => entry.node === 'node-a'),
        'node-b never took it; the resume call started no second driver',
      );
      assert.deepEqual(bank.calls, [
        `reserve ${id}:reserve_shares`,
        `place ${id}:place_order`,
        `charge ${id}:charge_fee`,
      ]);
    });
  });
}
