import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChassisError } from '@chassis/core';
import { Database, type SagaDefinition, type SagaHistoryEntry, type SagaRunnerOptions, sql } from '@chassis/data';
import { type DatabaseTarget, waitUntil } from '@chassis/testing';
import type { KyselyPlugin } from 'kysely';
import { FakeBank, sellOrderSaga } from './bank.ts';
import { gate, order, sagaNodes, trace } from './fixtures.ts';

/** A logger that keeps what the runner says, for the tests to read. */
function captureLogs() {
  const entries: { level: 'warn' | 'error'; fields: Record<string, unknown>; message: string }[] = [];
  const logger = {
    warn: (fields: Record<string, unknown>, message: string) => void entries.push({ level: 'warn', fields, message }),
    error: (fields: Record<string, unknown>, message: string) => void entries.push({ level: 'error', fields, message }),
  } as unknown as NonNullable<SagaRunnerOptions['logger']>;
  const said = (text: string) => entries.filter((entry) => entry.message.includes(text));
  return { logger, entries, said };
}

const TAKEN_OVER = 'saga instance taken over by another node; this node stops driving it';

/**
 * Leases, takeovers and sweeps with two nodes in this one process on one database: what the SIGKILL
 * test (child processes, out of a mutation run's sight) checks from outside, checked here from inside.
 */
export function sagaTakeoverSuite(target: DatabaseTarget): void {
  describe(`saga leases, takeovers and sweeps: ${target.name}`, { skip: target.skip }, () => {
    const nodes = sagaNodes(target, 'lease');
    const gates: ReturnType<typeof gate>[] = [];
    /** A gate the suite opens at its end if a failed test left it shut, so that the runners can stop. */
    const shut = () => {
      const made = gate();
      gates.push(made);
      return made;
    };
    after(async () => {
      for (const left of gates) left.open();
      await nodes.close();
      await target.cleanup();
    });

    async function setup(sagas: SagaDefinition<unknown, unknown>[], options: Partial<SagaRunnerOptions> = {}) {
      const { db, runner, service, node } = await nodes.setup(sagas, options);
      const instances = sql.id(service, 'chassis_sagas');
      /** The instances table is away while `run` runs (every statement on it fails), and back after. */
      const whileTableAway = async (run: () => Promise<void>) => {
        const rename = (from: string, to: string) =>
          sql`alter table ${sql.id(service, from)} rename to ${sql.id(to)}`.execute(db.kysely);
        await rename('chassis_sagas', 'chassis_sagas_away');
        try {
          await run();
        } finally {
          await rename('chassis_sagas_away', 'chassis_sagas');
        }
      };
      return { db, runner, service, node, instances, whileTableAway };
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

    it(`[${target.name}] a renewal that finds its instances taken over lets them go: the attempt in flight is aborted, a retry delay ends there, nothing more is written`, async () => {
      const bank = new FakeBank();
      const reasons: unknown[] = [];
      const ended = shut();
      let running = false;
      const saga = sellOrderSaga(bank, {
        // A retry delay that outlasts the test: the first attempt of "waits" leaves it waiting.
        retry: { maxAttempts: 3, initialDelayMs: 1_000_000_000, maxDelayMs: 1_000_000_000 },
        before: {
          place_order: async (ctx) => {
            if (ctx.sagaId === 'waits' && ctx.attempt === 1) throw new ChassisError('UNAVAILABLE', 'Exchange is down');
            if (ctx.sagaId === 'runs' && ctx.attempt === 1) {
              running = true;
              // The exchange never answers; the step gives up when told to.
              await Promise.race([
                ended.opened,
                new Promise<void>((_, reject) => {
                  ctx.signal.addEventListener('abort', () => {
                    reasons.push(ctx.signal.reason);
                    reject(ctx.signal.reason);
                  });
                }),
              ]);
            }
          },
        },
      });
      const logs = captureLogs();
      const { db, runner, instances, node } = await setup([saga], {
        nodeId: 'node-a',
        leaseMs: 300,
        concurrency: 2,
        logger: logs.logger,
      });
      await runner.start(saga, order('waits'), { id: 'waits' });
      await waitUntil(async () => (await runner.get('waits'))?.history.at(-1)?.kind === 'step_retrying', {
        what: 'a retry delay under way',
      });
      await runner.start(saga, order('runs'), { id: 'runs' });
      await waitUntil(() => running, { what: 'the order being placed' });
      // A third instance waits for one of the two slots: it runs once a driver above has stopped.
      await runner.start(saga, order('queued'), { id: 'queued' });

      // Another node took both over (as if this one had stalled past its lease).
      await sql`update ${instances} set owner = 'node-b', lease_until = now() + interval '1 hour'
        where id in ('waits', 'runs')`.execute(db.kysely);
      await waitUntil(() => reasons.length > 0, { what: 'the renewal to notice', timeoutMs: 10_000 });
      assert.equal(reasons.length, 1);
      assert.ok(reasons[0] instanceof ChassisError);
      assert.equal(reasons[0].code, 'CONFLICT');
      assert.equal(reasons[0].message, 'Saga instance "runs" is now driven by another node');

      assert.equal((await runner.wait('queued')).status, 'completed', 'the driver of "runs" stopped, freeing its slot');
      assert.deepEqual(
        logs.said('taken over'),
        [],
        'the renewal had marked it lost: the node stopped without even trying to write',
      );
      const runs = await runner.get('runs');
      assert.equal(runs?.owner, 'node-b');
      assert.equal(trace(runs!.history).at(-1), 'step_started place_order 1', 'its failed attempt is not recorded');
      assert.ok(runs!.history.every((entry) => entry.node === 'node-a'));
      await runner.stop();
      const waits = await runner.get('waits');
      assert.equal(waits?.owner, 'node-b', 'the stop let go of nothing it no longer held');
      assert.equal(trace(waits!.history).at(-1), 'step_retrying place_order 1');
      assert.deepEqual(
        bank.calls.filter((call) => !call.startsWith('reserve') && !call.includes('queued')),
        [],
        'neither placed an order',
      );

      // node-b, for real now: its own lease, so it takes both at once; the delay is over.
      await sql`update ${instances} set wake_at = null where id = 'waits'`.execute(db.kysely);
      const other = await node({ nodeId: 'node-b' });
      assert.deepEqual((await other.resumeAll()).sort(), ['runs', 'waits']);
      for (const id of ['waits', 'runs']) {
        const done = await other.wait(id);
        assert.equal(done.status, 'completed', id);
        const resumed = done.history.findIndex((entry) => entry.kind === 'saga_resumed');
        assert.ok(done.history.slice(0, resumed).every((entry) => entry.node === 'node-a'));
        assert.ok(done.history.slice(resumed).every((entry) => entry.node === 'node-b'));
        assert.deepEqual(trace(done.history.slice(resumed, resumed + 3)), [
          'saga_resumed place_order',
          'step_started place_order 2',
          'step_completed place_order 2',
        ]);
      }
      for (const id of ['waits', 'runs', 'queued']) {
        assert.equal(bank.effects.filter((effect) => effect === `place ${id}:place_order`).length, 1);
        assert.equal(bank.effects.filter((effect) => effect === `charge ${id}:charge_fee 100`).length, 1);
      }
      assert.equal(bank.effects.filter((effect) => effect.startsWith('reserve')).length, 3);
    });

    it(`[${target.name}] a renewal failing on the database is logged and tried again; the node keeps the instance`, async () => {
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
      const logs = captureLogs();
      const { runner, whileTableAway } = await setup([saga], { nodeId: 'node-a', leaseMs: 300, logger: logs.logger });
      const id = await runner.start(saga, order('f-1'));
      await waitUntil(() => signal !== undefined, { what: 'the order being placed' });
      await whileTableAway(() =>
        waitUntil(() => logs.said('saga lease renewal failed').length >= 2, {
          what: 'two renewals failing',
          timeoutMs: 10_000,
        }),
      );
      for (const entry of logs.said('saga lease renewal failed')) {
        assert.equal(entry.level, 'warn');
        assert.ok(entry.fields.err instanceof Error, 'with the error');
      }
      const lapsed = (await runner.get(id))!.leaseUntil!;
      await waitUntil(async () => ((await runner.get(id))?.leaseUntil?.getTime() ?? 0) > lapsed.getTime(), {
        what: 'the renewals to go on',
        timeoutMs: 10_000,
        intervalMs: 50,
      });
      assert.equal(signal!.aborted, false, 'a renewal that could not run is not a loss');
      slow.open();
      const done = await runner.wait(id);
      assert.equal(done.status, 'completed');
      assert.equal(trace(done.history).length, 8);
      assert.ok(done.history.every((entry) => entry.node === 'node-a'));
      assert.deepEqual(logs.said('taken over'), []);
      assert.deepEqual(bank.effects, ['reserve 101 BHP 10', `place ${id}:place_order`, `charge ${id}:charge_fee 100`]);
    });

    it(`[${target.name}] a node that finds on writing that another node took its instance over stops there: no next step, no compensation`, async () => {
      const bank = new FakeBank();
      const slow = shut();
      const entered = new Set<string>();
      const saga = sellOrderSaga(bank, {
        before: {
          place_order: async (ctx) => {
            if (ctx.attempt > 1) return;
            entered.add(ctx.sagaId);
            await slow.opened;
            // "late-refusal" hears back, late, that its order was refused; "late-success" that it was placed.
            if (ctx.sagaId === 'late-refusal') {
              throw new ChassisError('ORDER_REJECTED', 'The exchange rejected the order', { retryable: false });
            }
          },
        },
      });
      const logs = captureLogs();
      // Renewals 20 s apart: this node learns of the takeover only when it writes.
      const { db, runner, instances, node } = await setup([saga], {
        nodeId: 'node-a',
        leaseMs: 60_000,
        logger: logs.logger,
      });
      const ids = ['late-refusal', 'late-success'];
      for (const id of ids) await runner.start(saga, order(id), { id });
      await waitUntil(() => entered.size === 2, { what: 'both orders being placed' });
      // node-a stalls past its lease; node-b takes both over and finishes them.
      await sql`update ${instances} set lease_until = now() - interval '1 second'`.execute(db.kysely);
      const other = await node({ nodeId: 'node-b', leaseMs: 60_000 });
      assert.deepEqual((await other.resumeAll()).sort(), ids);
      const finished = new Map<string, SagaHistoryEntry[]>();
      for (const id of ids) {
        const done = await other.wait(id);
        assert.equal(done.status, 'completed');
        finished.set(id, done.history);
      }

      slow.open();
      await waitUntil(() => logs.said('taken over').length === 2, {
        what: 'node-a to find out, once per instance',
        timeoutMs: 10_000,
      });
      await runner.stop();
      assert.deepEqual(
        logs
          .said('taken over')
          .map((entry) => [entry.level, entry.message, entry.fields])
          .sort((a, b) =>
            String((a[2] as { sagaId: string }).sagaId).localeCompare((b[2] as { sagaId: string }).sagaId),
          ),
        ids.map((id) => ['warn', TAKEN_OVER, { sagaId: id, saga: 'sell-order' }]),
      );
      for (const id of ids) {
        const after = await runner.get(id);
        assert.equal(after?.status, 'completed');
        assert.deepEqual(after!.history, finished.get(id), `${id}: node-a wrote nothing after the takeover`);
        assert.equal(trace(after!.history).at(-1), 'saga_completed');
      }
      assert.deepEqual(
        bank.calls.filter((call) => call.startsWith('charge')).sort(),
        ids.map((id) => `charge ${id}:charge_fee`),
        'node-a did not go on to charge the fee: node-b did, once',
      );
      assert.deepEqual(
        bank.calls.filter((call) => /^(cancel|release|refund)/.test(call)),
        [],
        'node-a compensated nothing of what node-b completed',
      );
      for (const id of ids) {
        assert.equal(
          bank.effects.filter((effect) => effect.includes(`${id}:`)).length,
          2,
          `${id}: placed and charged once`,
        );
      }
    });

    it(`[${target.name}] a retry delay is recorded (delayMs, and the wake time) and a node resuming the instance waits it out`, async () => {
      const bank = new FakeBank();
      const saga = sellOrderSaga(bank, {
        retry: { maxAttempts: 3, initialDelayMs: 1_000_000_000, maxDelayMs: 1_000_000_000 },
        before: {
          place_order: async (ctx) => {
            if (ctx.attempt === 1) throw new ChassisError('UNAVAILABLE', 'Exchange is down');
          },
        },
      });
      const { db, runner, instances, service, node } = await setup([saga], { nodeId: 'node-a' });
      const id = await runner.start(saga, order('w-1'));
      await waitUntil(async () => (await runner.get(id))?.history.at(-1)?.kind === 'step_retrying', {
        what: 'the retry delay',
      });
      const retrying = (await runner.get(id))!.history.at(-1)!;
      assert.equal(retrying.node, 'node-a');
      assert.equal(retrying.attempt, 1);
      assert.equal(retrying.error?.code, 'UNAVAILABLE');
      assert.ok(typeof retrying.delayMs === 'number' && retrying.delayMs > 0, `delayMs ${retrying.delayMs}`);
      const wake = await sql<{ after_ms: number }>`
        select round(extract(epoch from (s.wake_at - h.at)) * 1000)::int as after_ms
        from ${instances} s join ${sql.id(service, 'chassis_saga_history')} h on h.saga_id = s.id
        where h.seq = ${retrying.seq}`.execute(db.kysely);
      assert.deepEqual(wake.rows, [{ after_ms: retrying.delayMs }], 'it wakes delayMs after the entry');

      await runner.stop();
      const stopped = await runner.get(id);
      assert.equal(stopped?.owner, undefined, 'released at the stop');
      assert.equal(trace(stopped!.history).at(-1), 'step_retrying place_order 1');

      // The delay, shortened: whoever resumes it waits until then.
      const other = await node({ nodeId: 'node-b' });
      const set = await sql<{ wake_at: Date }>`
        update ${instances} set wake_at = now() + interval '600 milliseconds' where id = ${id}
        returning wake_at`.execute(db.kysely);
      const wakeAt = set.rows[0]!.wake_at;
      assert.deepEqual(await other.resumeAll(), [id]);
      const done = await other.wait(id);
      assert.equal(done.status, 'completed');
      const tail = done.history.slice(done.history.findIndex((entry) => entry.kind === 'saga_resumed'));
      assert.deepEqual(trace(tail.slice(0, 3)), [
        'saga_resumed place_order',
        'step_started place_order 2',
        'step_completed place_order 2',
      ]);
      assert.ok(tail.every((entry) => entry.node === 'node-b'));
      assert.ok(
        tail[1]!.at.getTime() >= wakeAt.getTime() - 5,
        `the next attempt (${tail[1]!.at.toISOString()}) not before the wake time (${wakeAt.toISOString()})`,
      );
      assert.deepEqual(bank.effects, ['reserve 101 BHP 10', `place ${id}:place_order`, `charge ${id}:charge_fee 100`]);
    });

    it(`[${target.name}] a hook throwing right after the start abandons the instance there: unowned, it is another node's at once`, async () => {
      const bank = new FakeBank();
      const saga = sellOrderSaga(bank);
      const seen: string[] = [];
      const { runner, node } = await setup([saga], {
        nodeId: 'node-a',
        onBoundary: (event) => {
          seen.push(event.boundary);
          if (event.boundary === 'saga_created') throw new Error('crash');
        },
      });
      const id = await runner.start(saga, order('b-1'));
      assert.equal(typeof id, 'string', 'the start itself succeeded');
      assert.deepEqual(seen, ['saga_created']);
      const left = await runner.get(id);
      assert.equal(left?.status, 'running');
      assert.equal(left?.owner, undefined, 'not claimed: no lease to wait for');
      assert.deepEqual(
        left!.history.map((entry) => [entry.kind, entry.node]),
        [['saga_created', 'node-a']],
      );
      const other = await node({ nodeId: 'node-b' });
      assert.deepEqual(await other.resumeAll(), [id]);
      const done = await other.wait(id);
      assert.equal(done.status, 'completed');
      assert.deepEqual(trace(done.history).slice(0, 3), [
        'saga_created',
        'saga_resumed reserve_shares',
        'step_started reserve_shares 1',
      ]);
      assert.ok(done.history.slice(1).every((entry) => entry.node === 'node-b'));
      assert.deepEqual(seen, ['saga_created'], 'node-a did nothing more');
      assert.deepEqual(bank.calls, [
        `reserve ${id}:reserve_shares`,
        `place ${id}:place_order`,
        `charge ${id}:charge_fee`,
      ]);
    });

    it(`[${target.name}] a driver that stopped on a database error is resumed by a later sweep; the step is run again under its key`, async () => {
      const bank = new FakeBank();
      const slow = shut();
      let entered = false;
      const saga = sellOrderSaga(bank, {
        before: {
          place_order: async (ctx) => {
            if (ctx.attempt > 1) return;
            entered = true;
            await slow.opened;
          },
        },
      });
      const logs = captureLogs();
      const { runner, whileTableAway } = await setup([saga], { nodeId: 'node-a', sweepMs: 50, logger: logs.logger });
      assert.deepEqual(await runner.resumeAll(), [], 'nothing yet; the sweeps start');
      const id = await runner.start(saga, order('s-1'));
      await waitUntil(() => entered, { what: 'the order being placed' });
      await whileTableAway(async () => {
        slow.open();
        await waitUntil(() => logs.said('saga driver stopped on an error').length > 0, {
          what: 'the write of the outcome failing',
          timeoutMs: 10_000,
        });
      });
      const [stopped] = logs.said('saga driver stopped on an error');
      assert.equal(stopped?.level, 'error');
      assert.equal(stopped?.message, 'saga driver stopped on an error; another sweep retries');
      assert.equal(stopped?.fields.sagaId, id);
      assert.ok(stopped?.fields.err instanceof Error);

      const done = await runner.wait(id, 10_000);
      assert.equal(done.status, 'completed');
      assert.deepEqual(trace(done.history).slice(3), [
        'step_started place_order 1',
        'saga_resumed place_order',
        'step_started place_order 2',
        'step_completed place_order 2',
        'step_started charge_fee 1',
        'step_completed charge_fee 1',
        'saga_completed',
      ]);
      assert.ok(done.history.every((entry) => entry.node === 'node-a'));
      assert.deepEqual(bank.calls, [
        `reserve ${id}:reserve_shares`,
        `place ${id}:place_order`,
        `place ${id}:place_order`,
        `charge ${id}:charge_fee`,
      ]);
      assert.deepEqual(bank.effects, ['reserve 101 BHP 10', `place ${id}:place_order`, `charge ${id}:charge_fee 100`]);
    });

    it(`[${target.name}] a sweep that fails is retried by the next one, which resumes what a dead node left`, async () => {
      const bank = new FakeBank();
      const saga = sellOrderSaga(bank);
      const logs = captureLogs();
      const { db, runner, instances, node, whileTableAway } = await setup([saga], {
        nodeId: 'node-a',
        sweepMs: 50,
        logger: logs.logger,
      });
      // A node that dies right after recording its first step's start; its lease holds for now.
      const dead = await node({
        nodeId: 'node-dead',
        onBoundary: (event) => {
          if (event.boundary === 'step_started') throw new Error('crash');
        },
      });
      const id = await dead.start(saga, order('d-1'));
      await waitUntil(async () => (await runner.get(id))?.history.length === 2, { what: 'the dead node to die' });
      assert.deepEqual(await runner.resumeAll(), [], 'not while its lease holds; the sweeps start');
      await whileTableAway(() =>
        waitUntil(() => logs.said('saga sweep failed').length >= 2, {
          what: 'two sweeps failing',
          timeoutMs: 10_000,
        }),
      );
      for (const entry of logs.said('saga sweep failed')) {
        assert.equal(entry.level, 'warn');
        assert.equal(entry.message, 'saga sweep failed; the next one retries');
        assert.ok(entry.fields.err instanceof Error);
      }
      await sql`update ${instances} set lease_until = now() - interval '1 second' where id = ${id}`.execute(db.kysely);
      const done = await runner.wait(id, 10_000);
      assert.equal(done.status, 'completed');
      assert.deepEqual(trace(done.history).slice(0, 4), [
        'saga_created',
        'step_started reserve_shares 1',
        'saga_resumed reserve_shares',
        'step_started reserve_shares 2',
      ]);
      assert.ok(done.history.slice(2).every((entry) => entry.node === 'node-a'));
      assert.deepEqual(bank.effects, ['reserve 101 BHP 10', `place ${id}:place_order`, `charge ${id}:charge_fee 100`]);
    });

    it(`[${target.name}] sweeps do not overlap: while one is slow the next ones skip, and sweeping goes on after it`, async () => {
      const bank = new FakeBank();
      const saga = sellOrderSaga(bank);
      const { db, node } = await setup([saga], { nodeId: 'node-setup' });
      // node-a's database handle, seen through a plugin that can hold back every result it gets.
      let holding: ReturnType<typeof gate> | undefined;
      let heldBack = 0;
      let peak = 0;
      const watch: KyselyPlugin = {
        transformQuery: (args) => args.node,
        async transformResult(args) {
          const hold = holding;
          if (!hold) return args.result;
          heldBack++;
          peak = Math.max(peak, heldBack);
          try {
            await hold.opened;
          } finally {
            heldBack--;
          }
          return args.result;
        },
      };
      const watched = new Database(
        db.kind,
        db.kysely.withPlugin(watch),
        (channel, onNotify) => db.listen(channel, onNotify),
        db.description,
        db.usage,
        async () => undefined, // db's connections: closed with db
      );
      const runner = await node({ nodeId: 'node-a', sweepMs: 30 }, watched);
      assert.deepEqual(await runner.resumeAll(), [], 'the sweeps start');
      holding = shut();
      let id: string | undefined;
      try {
        await waitUntil(() => heldBack > 0, { what: 'a sweep held back', timeoutMs: 10_000 });
        // Ten sweep periods: each would have started a sweep of its own.
        await sleep(300);
        assert.equal(peak, 1, 'one sweep at a time');
        // Meanwhile a node dies right after its first step's start, with a lease that lapses at once.
        const dead = await node(
          {
            nodeId: 'node-dead',
            leaseMs: 100,
            onBoundary: (event) => {
              if (event.boundary === 'step_started') throw new Error('crash');
            },
          },
          db,
        );
        id = await dead.start(saga, order('o-1'));
        assert.equal(peak, 1);
      } finally {
        holding.open();
        holding = undefined;
      }
      const done = await runner.wait(id, 10_000);
      assert.equal(done.status, 'completed', 'the sweep after the slow one took it');
      assert.deepEqual(trace(done.history).slice(2, 4), [
        'saga_resumed reserve_shares',
        'step_started reserve_shares 2',
      ]);
      assert.ok(done.history.slice(2).every((entry) => entry.node === 'node-a'));
      assert.deepEqual(bank.effects, ['reserve 101 BHP 10', `place ${id}:place_order`, `charge ${id}:charge_fee 100`]);
    });
  });
}
