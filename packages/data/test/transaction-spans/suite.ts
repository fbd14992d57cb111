import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  action,
  type ChassisNode,
  callOpsHttp,
  createNode,
  defineService,
  handle,
  MemoryBroker,
  memoryTransport,
  type StoredSpan,
} from '@chassis/core';
import { commit, database, dataExtension, sql } from '@chassis/data';
import type { DatabaseTarget } from '@chassis/testing';
import { z } from 'zod';

const OPS_SECRET = 'transaction-spans-secret-0123456789';
const fixtures = new URL('../fixtures/migrations/', import.meta.url);

interface OrdersTables {
  orders: { id: string; account_id: string; symbol: string; quantity: number };
}

const place = action('orders.place', {
  input: z.object({ quantity: z.number().int(), split: z.boolean().optional() }),
  output: z.object({ orderId: z.string() }),
});

/**
 * The data kit's span per transaction: `db.transaction <service>` with how many statements it ran,
 * an error when the handler failed and it rolled back; none when the trace is not recorded.
 */
export function transactionSpanSuite(target: DatabaseTarget): void {
  describe(`a span per transaction: ${target.name}`, { skip: target.skip }, () => {
    let node: ChassisNode;
    let ops: string;
    let url: string;

    before(async () => {
      url = await target.newDatabase();
      node = createNode({
        logLevel: 'silent',
        transport: memoryTransport({ broker: new MemoryBroker() }),
        opsPort: 0,
        opsHost: '127.0.0.1',
        opsSecret: OPS_SECRET,
        // Only what arrives sampled is recorded: the test decides per call with the traceparent flag.
        tracing: { sampleRatio: 0 },
        extensions: [dataExtension({ url })],
        services: [
          defineService({
            name: 'orders',
            migrations: new URL('orders/', fixtures),
            actions: [
              handle(place, async ({ quantity, split }, ctx) => {
                const orderId = randomUUID();
                let db = await database<OrdersTables>(ctx);
                await db
                  .insertInto('orders')
                  .values({ id: orderId, account_id: 'a1', symbol: 'ACME', quantity })
                  .execute();
                await sql`select 1`.execute(db);
                if (split) {
                  await commit(ctx);
                  db = await database<OrdersTables>(ctx);
                  await db.selectFrom('orders').select('id').execute();
                }
                await db.updateTable('orders').set({ quantity }).where('id', '=', orderId).execute();
                return { orderId };
              }),
            ],
          }),
        ],
      });
      await node.start();
      ops = `http://127.0.0.1:${node.opsPort}`;
    });
    after(async () => {
      await node?.stop();
      await target.cleanup();
    });

    async function spansOf(traceId: string): Promise<StoredSpan[]> {
      const { spans } = (await callOpsHttp(ops, 'trace', { traceId }, { secret: OPS_SECRET })) as {
        spans: StoredSpan[];
      };
      return spans.filter((span) => span.name.startsWith('db.'));
    }
    const traceparent = (traceId: string, flags: string) => `00-${traceId}-b7ad6b7169203331-${flags}`;
    const newTraceId = () => randomUUID().replaceAll('-', '');

    it('a committed transaction: a client span with its statement count, under the handler', async () => {
      const traceId = newTraceId();
      await node.call(place, { quantity: 5 }, { traceparent: traceparent(traceId, '01') });
      const [span] = await spansOf(traceId);
      assert.ok(span, 'a db.transaction span');
      assert.equal(span.name, 'db.transaction orders');
      assert.equal(span.kind, 'client');
      assert.equal(span.service, 'orders');
      assert.equal(span.status, 'unset');
      assert.equal(span.attributes['db.system'], 'postgresql');
      // insert, select 1, update: BEGIN and COMMIT are not statements.
      assert.equal(span.attributes['db.statements'], 3);
      if (target.name === 'postgres') assert.equal(typeof span.attributes['db.name'], 'string');
      assert.ok(span.parentSpanId);
    });

    it('a unit that commits part way has a span per transaction', async () => {
      const traceId = newTraceId();
      await node.call(place, { quantity: 2, split: true }, { traceparent: traceparent(traceId, '01') });
      const spans = await spansOf(traceId);
      assert.deepEqual(
        spans.map((span) => span.attributes['db.statements']),
        [2, 2],
      );
    });

    it('a rollback after the handler failed is an error span', async () => {
      // The check constraint refuses a quantity of 0 or less: the insert fails, the unit rolls back.
      const traceId = newTraceId();
      await assert.rejects(node.call(place, { quantity: -1 }, { traceparent: traceparent(traceId, '01') }));
      const [span] = await spansOf(traceId);
      assert.ok(span);
      assert.equal(span.status, 'error');
      assert.match(span.error ?? '', /check/);
      assert.equal(span.attributes['db.statements'], 1);
    });

    it('a trace not recorded has no transaction span', async () => {
      const traceId = newTraceId();
      await node.call(place, { quantity: 1 }, { traceparent: traceparent(traceId, '00') });
      assert.deepEqual(await spansOf(traceId), []);
    });
  });
}
