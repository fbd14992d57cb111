import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChassisError } from '@chassis/core';
import {
  type AnyTables,
  Database,
  defineProjection,
  type EventDataOf,
  EventStore,
  LOG_START,
  type LogPosition,
  logPositionOf,
  type Projection,
  ProjectionFailed,
  ProjectionRunner,
  type StoredEvent,
  type StoredEventOf,
  sql,
  WrongExpectedVersion,
} from '@chassis/data';
import { type DatabaseTarget, rollbackIfOpen, waitUntil } from '@chassis/testing';
import type { Kysely, RawBuilder } from 'kysely';
import { z } from 'zod';

/** SimpleBank's orders, event-sourced: one stream per order. */
const OrderId = z.string().min(1);
const orderEvents = {
  OrderCreated: z.object({
    orderId: OrderId,
    accountId: z.string().regex(/^\d+$/),
    side: z.enum(['sell', 'buy']),
    symbol: z.string().regex(/^[A-Z]{1,5}$/),
    quantity: z.number().int().positive(),
  }),
  OrderPlaced: z.object({ orderId: OrderId, exchangeOrderId: z.string().min(1) }),
  OrderCompleted: z.object({ orderId: OrderId, price: z.string().regex(/^\d+\.\d{2}$/) }),
  OrderFailed: z.object({ orderId: OrderId, reason: z.string().min(1) }),
  /** An event no projection here reads: runners pass over it. */
  OrderNoted: z.object({ orderId: OrderId, note: z.string() }),
};
type OrderEvents = EventDataOf<typeof orderEvents>;
type OrderStore = EventStore<typeof orderEvents>;

const created = (orderId: string, accountId = '101', quantity = 10) =>
  ({ type: 'OrderCreated', data: { orderId, accountId, side: 'sell', symbol: 'BHP', quantity } }) as const;
const placed = (orderId: string) =>
  ({ type: 'OrderPlaced', data: { orderId, exchangeOrderId: `x-${orderId}` } }) as const;
const completed = (orderId: string, price = '91.72') => ({ type: 'OrderCompleted', data: { orderId, price } }) as const;
const failed = (orderId: string, reason = 'rejected by the exchange') =>
  ({ type: 'OrderFailed', data: { orderId, reason } }) as const;

interface OrderState {
  status: 'none' | 'created' | 'placed' | 'completed' | 'failed';
  quantity: number;
  price: string | null;
  history: string[];
}
const noOrder: OrderState = { status: 'none', quantity: 0, price: null, history: [] };
/** The order's fold: `event` is a union on `type`, each member's data typed by its schema. */
function evolve(state: OrderState, event: StoredEventOf<typeof orderEvents>): OrderState {
  switch (event.type) {
    case 'OrderCreated':
      return { ...state, status: 'created', quantity: event.data.quantity, history: [...state.history, 'created'] };
    case 'OrderPlaced':
      return { ...state, status: 'placed', history: [...state.history, 'placed'] };
    case 'OrderCompleted':
      return { ...state, status: 'completed', price: event.data.price, history: [...state.history, 'completed'] };
    case 'OrderFailed':
      return { ...state, status: 'failed', history: [...state.history, 'failed'] };
    default:
      return state;
  }
}

/** The customer-orders read model: the orders of each account, as GET /orders?accountId lists them. */
async function createReadModel(db: Database, service: string): Promise<void> {
  await sql`create table ${sql.id(service, 'customer_orders')} (
    order_id text primary key,
    account_id text not null,
    side text not null,
    symbol text not null,
    quantity integer not null,
    status text not null,
    exchange_order_id text,
    price text,
    reason text,
    version integer not null,
    applied integer not null
  )`.execute(db.kysely);
}

function customerOrders(service: string, options: { failOn?: () => string | undefined } = {}): Projection {
  const table = sql.id(service, 'customer_orders');
  const step = async (trx: Kysely<AnyTables>, e: StoredEvent<{ orderId: string }>, set: RawBuilder<unknown>) => {
    if (options.failOn?.() === e.data.orderId) throw new Error(`cannot project order ${e.data.orderId}`);
    const result = await sql`update ${table} set ${set}, version = ${e.version}, applied = applied + 1
      where order_id = ${e.data.orderId}`.execute(trx);
    assert.equal(Number(result.numAffectedRows), 1, `order ${e.data.orderId} is in the read model`);
  };
  return defineProjection<OrderEvents>({
    name: 'customer-orders',
    handlers: {
      async OrderCreated(e, trx) {
        if (options.failOn?.() === e.data.orderId) throw new Error(`cannot project order ${e.data.orderId}`);
        const d = e.data;
        await sql`insert into ${table} (order_id, account_id, side, symbol, quantity, status, version, applied)
          values (${d.orderId}, ${d.accountId}, ${d.side}, ${d.symbol}, ${d.quantity}, 'created', ${e.version}, 1)`.execute(
          trx,
        );
      },
      OrderPlaced: (e, trx) => step(trx, e, sql`status = 'placed', exchange_order_id = ${e.data.exchangeOrderId}`),
      OrderCompleted: (e, trx) => step(trx, e, sql`status = 'completed', price = ${e.data.price}`),
      OrderFailed: (e, trx) => step(trx, e, sql`status = 'failed', reason = ${e.data.reason}`),
    },
    async reset(trx) {
      await sql`delete from ${table}`.execute(trx);
    },
  });
}

async function readModel(db: Database, service: string): Promise<Record<string, unknown>[]> {
  const result = await sql<Record<string, unknown>>`
    select * from ${sql.id(service, 'customer_orders')} order by account_id, order_id`.execute(db.kysely);
  return result.rows;
}

/** The event store and projections, the same on PGlite and PostgreSQL. */
export function eventStoreSuite(target: DatabaseTarget): void {
  describe(`event store and projections: ${target.name}`, { skip: target.skip }, () => {
    const open: Database[] = [];
    const runners: ProjectionRunner[] = [];
    after(async () => {
      await Promise.allSettled(runners.map((runner) => runner.stop()));
      await Promise.allSettled(open.map((db) => db.close()));
      await target.cleanup();
    });

    /**
     * A fresh database with an installed store, and `other`: a second node's handle on the same database
     * — on PostgreSQL a second pool, so two writers truly race; on PGlite (one process's database, one
     * connection) the same handle, so its transactions take turns.
     */
    async function setup(): Promise<{
      db: Database;
      other: Database;
      store: OrderStore;
      otherStore: OrderStore;
      service: string;
    }> {
      const url = await target.newDatabase();
      const db = await Database.open(url);
      open.push(db);
      let other = db;
      if (target.name === 'postgres') {
        other = await Database.open(url);
        open.push(other);
      }
      const service = `orders-${randomBytes(3).toString('hex')}`;
      const store = new EventStore(db, { service, schemas: orderEvents });
      await store.install();
      return { db, other, store, otherStore: new EventStore(other, { service, schemas: orderEvents }), service };
    }

    it(`[${target.name}] appends to a stream and reads it back in version order`, async () => {
      const { store } = await setup();
      const orderId = randomUUID();
      const stream = `order-${orderId}`;
      const first = await store.append(stream, [{ ...created(orderId), metadata: { correlationId: 'c-1' } }], {
        expectedVersion: 'no_stream',
      });
      assert.equal(first.version, 1);
      assert.equal(first.events[0]?.type, 'OrderCreated');
      const id = randomUUID();
      const second = await store.append(stream, [{ ...placed(orderId), id }, completed(orderId)], {
        expectedVersion: 1,
      });
      assert.equal(second.version, 3);
      assert.equal(second.positions.length, 2);
      assert.ok(second.positions[0]! < second.positions[1]!, 'positions increase within a batch');
      assert.ok(first.positions[0]! < second.positions[0]!, 'positions increase along the stream');

      const events = await store.readStream(stream);
      assert.deepEqual(
        events.map((e) => [e.version, e.type]),
        [
          [1, 'OrderCreated'],
          [2, 'OrderPlaced'],
          [3, 'OrderCompleted'],
        ],
      );
      const [one, two] = events;
      assert.deepEqual(one?.data, created(orderId).data);
      assert.deepEqual(one?.metadata, { correlationId: 'c-1' });
      assert.deepEqual(two?.metadata, {});
      assert.equal(two?.id, id, 'a given id is kept');
      assert.match(one!.id, /^[0-9a-f-]{36}$/);
      assert.ok(one!.recordedAt instanceof Date && Math.abs(one!.recordedAt.getTime() - Date.now()) < 60_000);
      assert.deepEqual(
        events.map((e) => e.position),
        [...first.positions, ...second.positions],
      );
      // What an append gives back is what the stream reads back: the events as the store keeps them.
      assert.deepEqual([...first.events, ...second.events], events);
      assert.deepEqual(
        (await store.readStream(stream, { fromVersion: 2, limit: 1 })).map((e) => e.version),
        [2],
      );
      assert.deepEqual(await store.readStream('order-nope'), []);
      assert.equal(await store.streamVersion(stream), 3);
      assert.equal(await store.streamVersion('order-nope'), 0);
    });

    it(`[${target.name}] a wrong expected version is refused with the stream, expected and actual; nothing is written`, async () => {
      const { store, service } = await setup();
      const orderId = randomUUID();
      const stream = `order-${orderId}`;
      await store.append(stream, [created(orderId)], { expectedVersion: 'no_stream' });

      const cases = [
        { expected: 'no_stream', actual: 1 },
        { expected: 0, actual: 1 },
        { expected: 5, actual: 1 },
      ] as const;
      for (const { expected, actual } of cases) {
        const error = await store
          .append(stream, [placed(orderId)], { expectedVersion: expected })
          .catch((e: unknown) => e);
        assert.ok(WrongExpectedVersion.is(error), `expected ${expected}: ${error}`);
        assert.deepEqual(error.data, { service, stream, expected, actual });
        assert.equal(error.status, 409);
        assert.match(error.message, new RegExp(`Stream "${stream}" of service "${service}" is at version 1`));
      }
      const missing = await store
        .append('order-missing', [created('missing')], { expectedVersion: 'stream_exists' })
        .catch((e: unknown) => e);
      assert.ok(WrongExpectedVersion.is(missing));
      assert.deepEqual(missing.data, { service, stream: 'order-missing', expected: 'stream_exists', actual: 0 });
      const empty = await store.append(stream, [], { expectedVersion: 3 }).catch((e: unknown) => e);
      assert.ok(WrongExpectedVersion.is(empty), 'an empty append still checks the version');

      assert.deepEqual(
        (await store.readStream(stream)).map((e) => e.version),
        [1],
      );
      assert.deepEqual(await store.readStream('order-missing'), []);
      assert.equal(await store.streamVersion('order-missing'), 0, 'no stream row left behind');

      assert.equal((await store.append(stream, [placed(orderId)], { expectedVersion: 'stream_exists' })).version, 2);
      assert.equal((await store.append(stream, [completed(orderId)], { expectedVersion: 'any' })).version, 3);
      assert.equal((await store.append('order-any', [created('any')], { expectedVersion: 'any' })).version, 1);
      assert.deepEqual(await store.append(stream, [], { expectedVersion: 3 }), {
        version: 3,
        positions: [],
        events: [],
      });

      const bad = await store.append(stream, [placed(orderId)], { expectedVersion: -1 }).catch((e: unknown) => e);
      assert.ok(bad instanceof ChassisError && bad.code === 'VALIDATION', String(bad));
      assert.match(bad.message, /is not a version/);
    });

    it(`[${target.name}] two writers at the same expected version: exactly one succeeds`, async () => {
      const { store, otherStore } = await setup();
      for (let round = 0; round < 10; round++) {
        const orderId = randomUUID();
        const stream = `order-${orderId}`;
        await store.append(stream, [created(orderId)], { expectedVersion: 'no_stream' });
        const outcomes = await Promise.allSettled([
          store.append(stream, [placed(orderId)], { expectedVersion: 1 }),
          otherStore.append(stream, [failed(orderId)], { expectedVersion: 1 }),
        ]);
        const won = outcomes.filter((o) => o.status === 'fulfilled');
        const lost = outcomes.filter((o) => o.status === 'rejected');
        assert.equal(won.length, 1, `round ${round}: one winner`);
        assert.equal(lost.length, 1, `round ${round}: one loser`);
        const reason = lost[0]!.reason;
        assert.ok(WrongExpectedVersion.is(reason), String(reason));
        assert.deepEqual(reason.data, { service: store.service, stream, expected: 1, actual: 2 });
        const events = await store.readStream(stream);
        assert.deepEqual(
          events.map((e) => e.version),
          [1, 2],
        );
        const winner = won[0]!.value.events[0]!;
        assert.equal(events[1]?.id, winner.id, "the stream holds the winner's event");
      }

      // Many writers creating one stream at once.
      const stream = `order-${randomUUID()}`;
      const attempts = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          (i % 2 ? otherStore : store).append(stream, [created(`o-${i}`)], { expectedVersion: 'no_stream' }),
        ),
      );
      assert.equal(attempts.filter((a) => a.status === 'fulfilled').length, 1);
      assert.ok(attempts.every((a) => a.status === 'fulfilled' || WrongExpectedVersion.is(a.reason)));
      assert.equal((await store.readStream(stream)).length, 1);
    });

    it(`[${target.name}] a writer waiting on another's open transaction loses once that commits`, async () => {
      const { db, store, otherStore } = await setup();
      const orderId = randomUUID();
      const stream = `order-${orderId}`;
      await store.append(stream, [created(orderId)], { expectedVersion: 'no_stream' });
      const trx = await db.kysely.startTransaction().execute();
      let rival: Promise<unknown> = Promise.resolve();
      try {
        await store.append(stream, [placed(orderId)], { expectedVersion: 1, trx });
        let settled = false;
        rival = otherStore.append(stream, [failed(orderId)], { expectedVersion: 1 }).finally(() => {
          settled = true;
        });
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(settled, false, 'the rival waits for the open transaction');
        await trx.commit().execute();
      } finally {
        await rollbackIfOpen(trx);
      }
      const error = await rival.catch((e: unknown) => e);
      assert.ok(WrongExpectedVersion.is(error), String(error));
      assert.deepEqual((error.data as { actual: number }).actual, 2);
      assert.deepEqual(
        (await store.readStream(stream)).map((e) => e.type),
        ['OrderCreated', 'OrderPlaced'],
      );
    });

    it(`[${target.name}] readAll: the log in order, paged by a cursor, streams in version order; open transactions are not in it`, async () => {
      const { db, store } = await setup();
      const a = randomUUID();
      const b = randomUUID();
      await store.append(`order-${a}`, [created(a)], { expectedVersion: 'no_stream' });
      await store.append(`order-${b}`, [created(b, '102'), placed(b)], { expectedVersion: 'no_stream' });
      await store.append(`order-${a}`, [placed(a), completed(a)], { expectedVersion: 1 });
      await store.append(`order-${b}`, [failed(b)], { expectedVersion: 2 });

      const all = await store.readAll();
      assert.deepEqual(
        all.map((e) => `${e.stream === `order-${a}` ? 'a' : 'b'}${e.version}`),
        ['a1', 'b1', 'b2', 'a2', 'a3', 'b3'],
      );
      const paged: string[] = [];
      let cursor: LogPosition = LOG_START;
      for (;;) {
        const page = await store.readAll({ after: cursor, limit: 4 });
        if (page.length === 0) break;
        paged.push(...page.map((e) => e.id));
        cursor = logPositionOf(page.at(-1)!);
      }
      assert.deepEqual(
        paged,
        all.map((e) => e.id),
        'paging with the cursor gives each event once, in the same order',
      );
      assert.deepEqual(await store.readAll({ after: logPositionOf(all.at(-1)!) }), []);

      // In an open transaction: its own events are in the stream for it, not yet in the log.
      const c = randomUUID();
      await db.transaction(async (trx) => {
        await store.append(`order-${c}`, [created(c)], { expectedVersion: 'no_stream', trx });
        assert.equal((await store.readStream(`order-${c}`, { trx })).length, 1);
        assert.deepEqual(
          (await store.readAll({ after: cursor, trx })).map((e) => e.stream),
          [],
          'not in the log while its transaction is open',
        );
      });
      assert.deepEqual(
        (await store.readAll({ after: cursor })).map((e) => e.stream),
        [`order-${c}`],
      );
    });

    it(`[${target.name}] a reader following the log never skips an event whose transaction commits late`, async () => {
      const { db, store, otherStore } = await setup();
      const seen: StoredEvent[] = [];
      let cursor: LogPosition = LOG_START;
      const follow = async () => {
        const events = await store.readAll({ after: cursor });
        seen.push(...events);
        if (events.length > 0) cursor = logPositionOf(events.at(-1)!);
        return events;
      };

      const early = randomUUID();
      const late = randomUUID();
      // The long transaction takes its position first ...
      const trx = await db.kysely.startTransaction().execute();
      try {
        const slow = await store.append(`order-${early}`, [created(early)], { expectedVersion: 'no_stream', trx });
        // ... another takes a later position and commits while it is open.
        const quick = otherStore.append(`order-${late}`, [created(late, '102')], { expectedVersion: 'no_stream' });
        if (target.name === 'postgres') {
          const done = await quick;
          assert.ok(slow.positions[0]! < done.positions[0]!, 'the open transaction holds the earlier position');
          assert.deepEqual(await follow(), [], 'the later event waits until the earlier transaction ends');
        }
        // (On PGlite the other writer waits for the one connection: the transactions take turns.)
        const following = target.name === 'postgres' ? follow() : Promise.resolve([]);
        await trx.commit().execute();
        await quick;
        await following;
      } finally {
        await rollbackIfOpen(trx);
      }
      await follow();
      assert.deepEqual(
        seen.map((e) => e.stream),
        [`order-${early}`, `order-${late}`],
        'both events, once each, the early one first',
      );
    });

    it(`[${target.name}] each stream stays in version order in the log when an older transaction appends after a newer one`, {
      skip:
        target.name === 'pglite'
          ? 'PGlite is one connection: an older transaction cannot append after a newer one commits there'
          : false,
    }, async () => {
      const { db, store, otherStore } = await setup();
      const orderId = randomUUID();
      const stream = `order-${orderId}`;
      const older = await db.kysely.startTransaction().execute();
      try {
        await sql`select pg_current_xact_id()`.execute(older); // takes its transaction id now
        await otherStore.append(stream, [created(orderId)], { expectedVersion: 'no_stream' }); // commits
        assert.deepEqual(await store.readAll(), [], 'held back while the older transaction is open');
        await store.append(stream, [placed(orderId)], { expectedVersion: 1, trx: older });
        await older.commit().execute();
      } finally {
        await rollbackIfOpen(older);
      }
      const log = await store.readAll();
      assert.deepEqual(
        log.map((e) => e.version),
        [1, 2],
      );
      assert.ok(log[1]!.txid >= log[0]!.txid);
    });

    it(`[${target.name}] snapshots: the latest is kept per revision; an older one does not replace it`, async () => {
      const { store, service } = await setup();
      const stream = `order-${randomUUID()}`;
      assert.equal(await store.loadSnapshot(stream), undefined);
      await store.saveSnapshot(stream, { version: 2, state: { status: 'placed' } });
      await store.saveSnapshot(stream, { version: 1, state: { status: 'created' } });
      assert.deepEqual(await store.loadSnapshot(stream), { version: 2, state: { status: 'placed' } });
      await store.saveSnapshot(stream, { version: 3, state: { status: 'completed' } });
      assert.deepEqual(await store.loadSnapshot(stream), { version: 3, state: { status: 'completed' } });
      await store.saveSnapshot(stream, { version: 1, state: { shape: 'new' }, revision: 2 });
      assert.deepEqual(await store.loadSnapshot(stream, { revision: 2 }), { version: 1, state: { shape: 'new' } });
      assert.deepEqual(await store.loadSnapshot(stream), { version: 3, state: { status: 'completed' } });
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      const error = await store.saveSnapshot(stream, { version: 4, state: cyclic }).catch((e: unknown) => e);
      assert.ok(error instanceof ChassisError && error.code === 'VALIDATION');
      assert.match(error.message, new RegExp(`snapshot of stream "${stream}" of service "${service}" is not JSON`));
    });

    it(`[${target.name}] aggregate folds the snapshot and the events after it into the state all events give`, async () => {
      const { store } = await setup();
      const orderId = randomUUID();
      const stream = `order-${orderId}`;
      await store.append(stream, [created(orderId, '101', 25), placed(orderId)], { expectedVersion: 'no_stream' });

      let folded = 0;
      const counting = (state: OrderState, event: StoredEventOf<typeof orderEvents>) => {
        folded += 1;
        return evolve(state, event);
      };
      const two = await store.aggregate(stream, { initial: noOrder, evolve: counting, snapshotEvery: 2 });
      assert.deepEqual(two, {
        version: 2,
        state: { status: 'placed', quantity: 25, price: null, history: ['created', 'placed'] },
      });
      assert.equal(folded, 2);
      assert.equal((await store.loadSnapshot(stream))?.version, 2, 'a snapshot after 2 events');

      await store.append(stream, [{ type: 'OrderNoted', data: { orderId, note: 'n' } }, completed(orderId, '92.10')], {
        expectedVersion: 2,
      });
      folded = 0;
      const now = await store.aggregate(stream, { initial: noOrder, evolve: counting });
      assert.equal(folded, 2, 'only the events after the snapshot are folded');
      const full = await store.aggregate(stream, { initial: noOrder, evolve, revision: 7 });
      assert.deepEqual(now, full, 'the same state as folding every event');
      assert.deepEqual(now, {
        version: 4,
        state: { status: 'completed', quantity: 25, price: '92.10', history: ['created', 'placed', 'completed'] },
      });
      assert.deepEqual(await store.aggregate('order-none', { initial: noOrder, evolve }), {
        version: 0,
        state: noOrder,
      });
    });

    it(`[${target.name}] aggregate with lock: a second reader waits for the first writer and sees what it wrote`, {
      skip: target.name === 'pglite' && 'PGlite is one connection: no transaction waits on another',
    }, async () => {
      const { db, other, store, otherStore } = await setup();
      const orderId = randomUUID();
      const stream = `order-${orderId}`;
      await store.append(stream, [created(orderId, '101', 25)], { expectedVersion: 'no_stream' });
      const first = await db.kysely.startTransaction().execute();
      const second = await other.kysely.startTransaction().execute();
      try {
        const mine = await store.aggregate(stream, {
          initial: noOrder,
          evolve,
          snapshots: false,
          lock: true,
          trx: first,
        });
        assert.equal(mine.version, 1);
        let settled = false;
        // The second reader's statement begins now, before the first writer's event exists.
        const theirs = otherStore
          .aggregate(stream, { initial: noOrder, evolve, snapshots: false, lock: true, trx: second })
          .finally(() => {
            settled = true;
          });
        await sleep(200);
        assert.equal(settled, false, 'the second reader waits on the stream’s lock');
        await store.append(stream, [placed(orderId), completed(orderId, '92.10')], { expectedVersion: 1, trx: first });
        await first.commit().execute();
        const after = await theirs;
        assert.deepEqual(after, {
          version: 3,
          state: { status: 'completed', quantity: 25, price: '92.10', history: ['created', 'placed', 'completed'] },
        });
        // Its append at the version it read goes through: no conflict to retry.
        await otherStore.append(stream, [{ type: 'OrderNoted', data: { orderId, note: 'n' } }], {
          expectedVersion: after.version,
          trx: second,
        });
        await second.commit().execute();
      } finally {
        await rollbackIfOpen(first);
        await rollbackIfOpen(second);
      }
      assert.equal((await store.readStream(stream)).length, 4);
      await assert.rejects(store.aggregate(stream, { initial: noOrder, evolve, lock: true }), { code: 'VALIDATION' });
    });

    it(`[${target.name}] a live projection, woken by notifications, equals its rebuild from zero`, async () => {
      const { db, store, service } = await setup();
      await createReadModel(db, service);
      // A poll too slow to matter: only the append's notification can bring events in time.
      // A handler's failure (the read model's assertion included) comes here, to fail this test at once
      // with its message rather than after a wait that times out.
      const failures: string[] = [];
      const live = new ProjectionRunner(store, customerOrders(service), {
        batchSize: 3,
        pollIntervalMs: 60_000,
        onError: (error) => failures.push(error.message),
      });
      runners.push(live);
      await live.start();

      const orders = Array.from({ length: 6 }, () => randomUUID());
      const endings = [completed, failed, completed, undefined, failed, completed] as const;
      for (const [i, orderId] of orders.entries()) {
        const stream = `order-${orderId}`;
        await store.append(stream, [created(orderId, i % 2 ? '102' : '101', 10 + i)], { expectedVersion: 'no_stream' });
        await store.append(stream, [placed(orderId), { type: 'OrderNoted', data: { orderId, note: 'skipped' } }], {
          expectedVersion: 1,
        });
        const end = endings[i];
        if (end) await store.append(stream, [end(orderId)], { expectedVersion: 3 });
      }
      // Every event is in the log (none held back by an open transaction) and the checkpoint is past the last.
      const total = orders.length * 3 + endings.filter(Boolean).length;
      let all: StoredEvent[] = [];
      await waitUntil(
        async () => {
          if (failures.length > 0) return true;
          all = await store.readAll();
          const at = await live.checkpoint();
          return all.length === total && at.position === all.at(-1)?.position;
        },
        { timeoutMs: 30_000, what: 'the live projection to reach the last event' },
      );
      assert.deepEqual(failures, [], 'the live projection applied every event');
      const last = logPositionOf(all.at(-1)!);
      await live.stop();
      assert.deepEqual(await live.checkpoint(), last, 'the checkpoint moved past the skipped OrderNoted events too');

      const liveRows = await readModel(db, service);
      assert.equal(liveRows.length, 6);
      assert.deepEqual(liveRows.map((r) => [r.account_id, r.status]).sort(), [
        ['101', 'completed'],
        ['101', 'completed'],
        ['101', 'failed'],
        ['102', 'completed'],
        ['102', 'failed'],
        ['102', 'placed'],
      ]);
      assert.ok(
        liveRows.every((r) => r.applied === (r.status === 'placed' ? 2 : 3)),
        'each handled event applied once',
      );

      // Damage the read model: a rebuild must replace it, not patch it.
      await sql`update ${sql.id(service, 'customer_orders')} set status = 'lost', applied = 99`.execute(db.kysely);
      await sql`insert into ${sql.id(service, 'customer_orders')} values ('stray', '101', 'buy', 'X', 1, 'created', null, null, null, 1, 1)`.execute(
        db.kysely,
      );
      const rebuilder = new ProjectionRunner(store, customerOrders(service), { batchSize: 4 });
      const replayed = await rebuilder.rebuild();
      assert.equal(replayed, all.length);
      assert.deepEqual(await readModel(db, service), liveRows, 'the rebuilt read model equals the live one');
      assert.deepEqual(await rebuilder.checkpoint(), last);
      assert.equal(await rebuilder.catchUp(), 0, 'nothing left to apply');
    });

    it(`[${target.name}] a failing handler applies nothing of its batch; fixed, the projection resumes and counts each event once`, async () => {
      const { db, store, service } = await setup();
      await createReadModel(db, service);
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
      let poison: string | undefined = b;
      const runner = new ProjectionRunner(store, customerOrders(service, { failOn: () => poison }), { batchSize: 10 });
      for (const orderId of [a, b, c]) {
        await store.append(`order-${orderId}`, [created(orderId), placed(orderId)], { expectedVersion: 'no_stream' });
      }
      const error = await runner.catchUp().catch((e: unknown) => e);
      assert.ok(ProjectionFailed.is(error), String(error));
      assert.match(
        error.message,
        new RegExp(
          `Projection "customer-orders" of service "${service}" failed on event OrderCreated \\(stream "order-${b}" version 1`,
        ),
      );
      assert.match(error.message, new RegExp(`cannot project order ${b}`));
      assert.deepEqual(await readModel(db, service), [], "nothing of the batch, not even a's events before b");
      assert.deepEqual(await runner.checkpoint(), LOG_START);

      poison = undefined;
      assert.equal(await runner.catchUp(), 6);
      const rows = await readModel(db, service);
      assert.deepEqual(
        rows.map((r) => [r.order_id, r.status, r.applied]).sort(),
        [a, b, c].map((id) => [id, 'placed', 2]).sort(),
      );
    });

    it(`[${target.name}] two runners of one projection at once (two nodes) apply each event once`, async () => {
      const { db, other, store, otherStore, service } = await setup();
      await createReadModel(db, service);
      const orders = Array.from({ length: 12 }, () => randomUUID());
      for (const orderId of orders) {
        await store.append(`order-${orderId}`, [created(orderId), placed(orderId), completed(orderId)], {
          expectedVersion: 'no_stream',
        });
      }
      const one = new ProjectionRunner(store, customerOrders(service), { batchSize: 5 });
      const two = new ProjectionRunner(otherStore, customerOrders(service), { batchSize: 5 });
      const counts = await Promise.all([one.catchUp(), two.catchUp(), one.catchUp(), two.catchUp()]);
      assert.equal(
        counts.reduce((x, y) => x + y, 0),
        36,
        'the runners shared the events between them',
      );
      const rows = await readModel(other, service);
      assert.equal(rows.length, 12);
      assert.ok(rows.every((r) => r.status === 'completed' && r.applied === 3));
    });

    it(`[${target.name}] an event failing its schema stops the append naming service, stream, type and fields; nothing of the batch is appended`, async () => {
      const { db, store, service } = await setup();
      const orderId = randomUUID();
      const stream = `order-${orderId}`;
      const error = await store
        .append(
          stream,
          [
            created(orderId),
            // @ts-expect-error: the contract's type catches it at compile time too
            { type: 'OrderPlaced', data: { orderId, exchangeOrderId: 42 } },
          ],
          { expectedVersion: 'no_stream' },
        )
        .catch((e: unknown) => e);
      assert.ok(error instanceof ChassisError && error.code === 'VALIDATION', String(error));
      assert.equal(error.status, 400);
      assert.match(
        error.message,
        new RegExp(
          `Event 2 of 2 \\(OrderPlaced\\) appended to stream "${stream}" of service "${service}" fails its schema \\(exchangeOrderId: .+\\); nothing of the batch was appended`,
        ),
      );
      const data = error.data as { service: string; stream: string; type: string; fields: { path: string }[] };
      assert.equal(data.service, service);
      assert.equal(data.type, 'OrderPlaced');
      assert.deepEqual(
        data.fields.map((f) => f.path),
        ['exchangeOrderId'],
      );

      const unknown = await store
        // @ts-expect-error: not an event of this store
        .append(stream, [{ type: 'OrderTeleported', data: {} }], { expectedVersion: 'no_stream' })
        .catch((e: unknown) => e);
      assert.ok(unknown instanceof ChassisError && unknown.code === 'VALIDATION');
      assert.match(unknown.message, /OrderTeleported.*no schema in this store \(known: OrderCreated, /);

      // Inside the caller's transaction too: refused before anything is written, the transaction goes on.
      await db.transaction(async (trx) => {
        const inside = await store
          // @ts-expect-error: quantity must be a number
          .append(stream, [{ ...created(orderId), data: { ...created(orderId).data, quantity: '10' } }], {
            expectedVersion: 'no_stream',
            trx,
          })
          .catch((e: unknown) => e);
        assert.ok(inside instanceof ChassisError && inside.code === 'VALIDATION');
        assert.match(inside.message, /quantity/);
      });
      assert.deepEqual(await store.readStream(stream), []);
      assert.deepEqual(await store.readAll(), []);
      assert.equal(await store.streamVersion(stream), 0);
    });

    it(`[${target.name}] an append shares the caller's transaction: with a read-model write, both commit or neither`, async () => {
      const { db, store, service } = await setup();
      await createReadModel(db, service);
      const table = sql.id(service, 'customer_orders');
      const orderId = randomUUID();
      const stream = `order-${orderId}`;
      await assert.rejects(
        db.transaction(async (trx) => {
          await store.append(stream, [created(orderId)], { expectedVersion: 'no_stream', trx });
          await sql`insert into ${table} values (${orderId}, '101', 'sell', 'BHP', 10, 'created', null, null, null, 1, 1)`.execute(
            trx,
          );
          throw new Error('the handler failed after writing');
        }),
        /the handler failed/,
      );
      assert.deepEqual(await store.readStream(stream), []);
      assert.deepEqual(await readModel(db, service), []);
      assert.equal(await store.streamVersion(stream), 0);

      await db.transaction(async (trx) => {
        await store.append(stream, [created(orderId)], { expectedVersion: 'no_stream', trx });
        await sql`insert into ${table} values (${orderId}, '101', 'sell', 'BHP', 10, 'created', null, null, null, 1, 1)`.execute(
          trx,
        );
      });
      assert.equal((await store.readStream(stream)).length, 1);
      assert.equal((await readModel(db, service)).length, 1);
    });

    it(`[${target.name}] install is idempotent and safe from two nodes at once, in a schema named with dashes`, async () => {
      const url = await target.newDatabase();
      const db = await Database.open(url);
      open.push(db);
      const other = target.name === 'postgres' ? await Database.open(url) : db;
      if (other !== db) open.push(other);
      const service = `customer-orders-${randomBytes(3).toString('hex')}`;
      await Promise.all([
        new EventStore(db, { service }).install(),
        new EventStore(other, { service }).install(),
        new EventStore(db, { service }).install(),
      ]);
      await new EventStore(other, { service }).install();
      const tables = await sql<{ table_name: string }>`
        select table_name from information_schema.tables where table_schema = ${service} order by table_name`.execute(
        db.kysely,
      );
      assert.deepEqual(
        tables.rows.map((r) => r.table_name),
        ['chassis_checkpoints', 'chassis_events', 'chassis_snapshots', 'chassis_streams'],
      );
      const store = new EventStore(db, { service });
      const appended = await store.append('s-1', [{ type: 'Anything', data: { free: 'form' } }], {
        expectedVersion: 'no_stream',
      });
      assert.equal(appended.version, 1, 'a store without schemas takes any type');
    });
  });
}
