import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { action, defineService, handle } from '@chassis/core';
import {
  Database,
  type DataExtension,
  database,
  dataExtension,
  defineSaga,
  runSagas,
  type SagaRunner,
  sql,
  startSaga,
} from '@chassis/data';
import { type DatabaseTarget, memoryTarget, useCluster, waitUntil } from '@chassis/testing';
import { z } from 'zod';
import { gate, trace } from './fixtures.ts';

const fixtures = new URL('../fixtures/migrations/', import.meta.url);

interface OrdersTables {
  orders: { id: string; account_id: string; symbol: string; quantity: number };
}

/**
 * Sagas run by the data extension in a node: `runSagas` in a service's start hook, `startSaga` in a
 * handler's unit of work, steps that call other services through the node (`step.call`), and a runner
 * that stops as its node drains and is resumed by the next node to start.
 */
export function sagasInNodeSuite(target: DatabaseTarget): void {
  describe(`sagas in a node (runSagas, startSaga): ${target.name}`, { skip: target.skip }, () => {
    const cluster = useCluster(memoryTarget());
    after(() => target.cleanup());

    /** orders-<suffix> sells through a saga whose first step reserves with ledger-<suffix>. */
    function slice() {
      const suffix = cluster.suffix;
      const reserve = action(`ledger-${suffix}.reserve`, {
        input: z.object({ orderId: z.string(), quantity: z.number().int() }),
        output: z.object({ reserved: z.number().int() }),
      });
      const sellShares = action(`orders-${suffix}.sellShares`, {
        input: z.object({
          orderId: z.string(),
          quantity: z.number().int(),
          fail: z.boolean().optional(),
          late: z.boolean().optional(),
        }),
        output: z.object({ orderId: z.string() }),
      });
      const calls: { orderId: string; auth: string | undefined; correlationId: string }[] = [];
      const ledger = defineService({
        name: reserve.service,
        actions: [
          handle(reserve, (input, ctx) => {
            calls.push({ orderId: input.orderId, auth: ctx.auth, correlationId: ctx.correlationId });
            return { reserved: input.quantity };
          }),
        ],
      });
      const hold = { gate: undefined as ReturnType<typeof gate> | undefined, reached: false };
      const late = { gate: gate(), reached: false };
      const finished: string[] = [];
      const sell = defineSaga({
        name: 'sell',
        data: z.object({ orderId: z.string(), quantity: z.number().int(), reserved: z.number().int().optional() }),
        steps: [
          {
            name: 'reserve',
            async run(data, step) {
              const { reserved } = await step.call(
                reserve,
                { orderId: data.orderId, quantity: data.quantity },
                { auth: 'the-orders-own-token' },
              );
              return { reserved };
            },
          },
          {
            name: 'hold',
            async run() {
              hold.reached = true;
              await hold.gate?.opened;
            },
          },
          {
            name: 'finish',
            async run(data) {
              finished.push(data.orderId);
            },
          },
        ],
      });
      const runners: SagaRunner[] = [];
      const orders = defineService({
        name: sellShares.service,
        migrations: new URL('orders/', fixtures),
        uses: [reserve],
        // A sweep far away: what runs, runs because its transaction committed (or the node started).
        start: async (service) => {
          runners.push(await runSagas(service, [sell], { sweepMs: 60_000 }));
        },
        actions: [
          handle(sellShares, async (input, ctx) => {
            if (input.late) {
              late.reached = true;
              await late.gate.opened;
            }
            const db = await database<OrdersTables>(ctx);
            await db
              .insertInto('orders')
              .values({ id: input.orderId, account_id: '101', symbol: 'BHP', quantity: input.quantity })
              .execute();
            await startSaga(ctx, sell, { orderId: input.orderId, quantity: input.quantity }, { id: input.orderId });
            if (input.fail) throw new Error('the order is refused after all');
            return { orderId: input.orderId };
          }),
        ],
      });
      return { sellShares, orders, ledger, calls, hold, late, finished, runners };
    }

    async function start(s: ReturnType<typeof slice>, db?: Database) {
      const data: DataExtension = dataExtension(db ? { database: db } : { url: await target.newDatabase() });
      const node = await cluster.startNode([s.orders, s.ledger], { extensions: [data] });
      return { node, data, runner: s.runners.at(-1)! };
    }

    it(`[${target.name}] an instance started in a handler's transaction runs as soon as it commits; its step calls another service`, async () => {
      const s = slice();
      const { node, runner } = await start(s);
      const orderId = randomUUID();
      await node.call(s.sellShares, { orderId, quantity: 10 });
      const done = await runner.wait(orderId, 5_000);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.data, { orderId, quantity: 10, reserved: 10 });
      assert.deepEqual(
        s.calls,
        [{ orderId, auth: 'the-orders-own-token', correlationId: orderId }],
        'the step called the ledger through the node, with its own token and the saga id as correlation id',
      );
      assert.deepEqual(s.finished, [orderId]);
      const gauge = await node.metrics.registry.getSingleMetricAsString('chassis_saga_instances');
      assert.match(
        gauge,
        new RegExp(`chassis_saga_instances\\{service="${s.orders.name}",saga="sell",status="completed"\\} 1`),
      );
    });

    it(`[${target.name}] the saga gauges: every status of every saga from 0, and how long the stalest unfinished instance has waited`, async () => {
      const s = slice();
      s.hold.gate = gate();
      const { node, runner } = await start(s);
      const scrape = async (series: string) => {
        const text = await node.metrics.registry.metrics();
        const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
        return line === undefined ? undefined : Number(line.slice(series.length + 1));
      };
      const labels = `service="${s.orders.name}",saga="sell"`;
      assert.equal(await scrape(`chassis_saga_instances{${labels},status="failed"}`), 0, 'before any instance');
      assert.equal(await scrape(`chassis_saga_oldest_unfinished_seconds{${labels}}`), 0);
      const orderId = randomUUID();
      await node.call(s.sellShares, { orderId, quantity: 3 });
      await waitUntil(() => s.hold.reached, { what: 'the saga to reach its hold step' });
      await sleep(1200);
      assert.equal(await scrape(`chassis_saga_instances{${labels},status="running"}`), 1);
      const waited = (await scrape(`chassis_saga_oldest_unfinished_seconds{${labels}}`)) ?? 0;
      assert.ok(waited >= 1 && waited < 30, `held in its step for ${waited} s`);
      s.hold.gate.open();
      assert.equal((await runner.wait(orderId, 5_000)).status, 'completed');
      assert.equal(await scrape(`chassis_saga_oldest_unfinished_seconds{${labels}}`), 0, 'none unfinished');
      assert.equal(await scrape(`chassis_saga_instances{${labels},status="completed"}`), 1);
    });

    it(`[${target.name}] an instance started by a handler that fails is neither recorded nor run`, async () => {
      const s = slice();
      const { node, runner, data } = await start(s);
      const orderId = randomUUID();
      await assert.rejects(node.call(s.sellShares, { orderId, quantity: 10, fail: true }), /refused after all/);
      await sleep(300);
      assert.equal(await runner.get(orderId), undefined, 'no instance');
      assert.deepEqual(s.calls, [], 'no step ran');
      const rows = await sql<{ n: number }>`select count(*)::int as n from ${sql.id(s.orders.name, 'orders')}`.execute(
        data.database.kysely,
      );
      assert.equal(rows.rows[0]?.n, 0, 'nor the order');
    });

    it(`[${target.name}] the runner stops as its node drains, and the next node to start resumes the instance`, async () => {
      const s = slice();
      const db = await Database.open(await target.newDatabase());
      try {
        s.hold.gate = gate();
        const first = await start(s, db);
        const orderId = randomUUID();
        await first.node.call(s.sellShares, { orderId, quantity: 7 });
        await waitUntil(() => s.hold.reached, { what: 'the saga to reach its hold step' });
        const stopping = first.node.stop();
        await sleep(50);
        // The attempt in flight finishes and is recorded; the step after it does not start.
        s.hold.gate.open();
        await stopping;
        const left = await first.runner.get(orderId);
        assert.equal(left?.status, 'running');
        assert.equal(left?.currentStep, 'finish');
        assert.equal(left?.owner, undefined, 'released at once for another node');
        assert.deepEqual(s.finished, []);

        const second = await start(s, db);
        assert.notEqual(second.runner, first.runner);
        const done = await second.runner.wait(orderId, 5_000);
        assert.equal(done.status, 'completed');
        assert.deepEqual(s.finished, [orderId]);
        assert.equal(s.calls.length, 1, 'the step completed on the first node is not run again');
        assert.deepEqual(trace(done.history).slice(-4), [
          'saga_resumed finish',
          'step_started finish 1',
          'step_completed finish 1',
          'saga_completed',
        ]);
      } finally {
        await db.close();
      }
    });

    it(`[${target.name}] a handler finishing while its node drains still starts its saga, which the next node runs`, async () => {
      const s = slice();
      const db = await Database.open(await target.newDatabase());
      try {
        const first = await start(s, db);
        const orderId = randomUUID();
        const sold = first.node.call(s.sellShares, { orderId, quantity: 3, late: true });
        await waitUntil(() => s.late.reached, { what: 'the handler to be in flight' });
        const stopping = first.node.stop();
        await sleep(50);
        s.late.gate.open();
        assert.deepEqual(await sold, { orderId }, 'the handler in flight finished');
        await stopping;
        const left = await first.runner.get(orderId);
        assert.equal(left?.status, 'running', 'recorded, not run');
        assert.deepEqual(s.calls, []);

        const second = await start(s, db);
        const done = await second.runner.wait(orderId, 5_000);
        assert.equal(done.status, 'completed');
        assert.deepEqual(s.finished, [orderId]);
      } finally {
        await db.close();
      }
    });
  });
}
