import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { action, type ChassisError, defineService, event, handle, on, type ServiceDefinition } from '@chassis/core';
import {
  commit,
  Database,
  type DataExtension,
  database,
  dataExtension,
  executeLast,
  openEventStore,
  outboxChannel,
  sql,
} from '@chassis/data';
import { type DatabaseTarget, memoryTarget, useCluster, waitUntil } from '@chassis/testing';
import type { Generated } from 'kysely';
import { z } from 'zod';

const fixtures = new URL('../fixtures/migrations/', import.meta.url);

interface OrdersTables {
  orders: { id: string; account_id: string; symbol: string; quantity: number; status: Generated<string> };
}
interface LedgerTables {
  reservations: { order_id: string; quantity: number };
  handled: { order_id: string };
}

/**
 * The data kit inside a node: a handler's writes and the events it emits commit together (outbox),
 * a failing handler leaves neither, and a redelivered event has one effect (inbox).
 */
export function extensionSuite(target: DatabaseTarget): void {
  describe(`data extension in a node: ${target.name}`, { skip: target.skip }, () => {
    const cluster = useCluster(memoryTarget(), { redelivery: { initialDelayMs: 20, maxDelayMs: 50 } });
    after(() => target.cleanup());

    function slice() {
      const suffix = cluster.suffix;
      const sellShares = action(`orders-${suffix}.sellShares`, {
        input: z.object({
          accountId: z.string(),
          symbol: z.string(),
          quantity: z.number().int(),
          fail: z.boolean().optional(),
        }),
        output: z.object({ orderId: z.string() }),
      });
      const orderCreated = event(
        `orders-${suffix}.order_created`,
        z.object({ orderId: z.string(), quantity: z.number().int() }),
      );
      const orders = defineService({
        name: sellShares.service,
        migrations: new URL('orders/', fixtures),
        uses: [orderCreated],
        actions: [
          handle(sellShares, async (input, ctx) => {
            const orderId = randomUUID();
            const db = await database<OrdersTables>(ctx);
            await db
              .insertInto('orders')
              .values({ id: orderId, account_id: input.accountId, symbol: input.symbol, quantity: input.quantity })
              .execute();
            await ctx.emit(orderCreated, { orderId, quantity: input.quantity });
            if (input.fail) throw new Error('the exchange said no after all');
            return { orderId };
          }),
        ],
      });
      const runs = { count: 0 };
      const ledger = defineService({
        name: `ledger-${suffix}`,
        migrations: new URL('ledger/', fixtures),
        events: [
          on(orderCreated, async ({ orderId, quantity }, ctx) => {
            runs.count++;
            const db = await database<LedgerTables>(ctx);
            await db.insertInto('reservations').values({ order_id: orderId, quantity }).execute();
            await db.insertInto('handled').values({ order_id: orderId }).execute();
            if (ctx.attempt === 1 && quantity === 13) throw new Error('unlucky on the first try');
          }),
        ],
      });
      return { sellShares, orderCreated, orders, ledger, runs };
    }

    /** The slice's ledger with another handler of order_created. */
    function ledgerHandling(
      s: ReturnType<typeof slice>,
      run: Parameters<typeof on<ReturnType<typeof slice>['orderCreated']>>[1],
      options: Parameters<typeof on>[2],
    ) {
      return defineService({
        name: s.ledger.name,
        migrations: new URL('ledger/', fixtures),
        events: [on(s.orderCreated, run, options)],
      });
    }

    async function start(
      services: ServiceDefinition[],
    ): Promise<{ data: DataExtension; node: Awaited<ReturnType<typeof cluster.startNode>> }> {
      const data = dataExtension({ url: await target.newDatabase(), relayPollIntervalMs: 200 });
      const node = await cluster.startNode(services, { extensions: [data] });
      return { data, node };
    }

    const count = async (data: DataExtension | Database, schema: string, table: string) => {
      const db = data instanceof Database ? data : data.database;
      return (await sql<{ n: number }>`select count(*)::int as n from ${sql.id(schema, table)}`.execute(db.kysely))
        .rows[0]!.n;
    };

    it(`[${target.name}] a handler's writes and the event it emits commit together; the relay publishes it`, async () => {
      const s = slice();
      const { data, node } = await start([s.orders, s.ledger]);
      const { orderId } = await node.call(s.sellShares, { accountId: '101', symbol: 'BHP', quantity: 10 });
      await waitUntil(async () => (await count(data, s.ledger.name, 'reservations')) === 1, {
        what: 'the ledger to handle order_created',
      });
      const order = await sql<{
        status: string;
      }>`select status from ${sql.id(s.orders.name, 'orders')} where id = ${orderId}`.execute(data.database.kysely);
      assert.equal(order.rows[0]?.status, 'created');
    });

    it(`[${target.name}] a handler that fails after writing and emitting leaves neither the row nor the event`, async () => {
      const s = slice();
      const { data, node } = await start([s.orders, s.ledger]);
      await assert.rejects(
        node.call(s.sellShares, { accountId: '101', symbol: 'BHP', quantity: 10, fail: true }),
        /the exchange said no/,
      );
      await sleep(600);
      assert.equal(await count(data, s.orders.name, 'orders'), 0, 'the order row rolled back');
      assert.equal(s.runs.count, 0, 'no order_created was published');
      assert.equal(await count(data, s.ledger.name, 'reservations'), 0);
    });

    it(`[${target.name}] an outbox insert that fails as it carries the COMMIT rolls the unit back; the connection's next unit commits`, async () => {
      const s = slice();
      // One connection: the unit after the failure runs on the connection the failure left.
      const db = await Database.open(await target.newDatabase(), { poolSize: 1 });
      const node = await cluster.startNode([s.orders, s.ledger], {
        extensions: [dataExtension({ database: db, relayPollIntervalMs: 200 })],
      });
      try {
        // Every new outbox row now breaks a check: the unit's last statement, its outbox insert, which
        // carries the COMMIT, fails with a constraint violation.
        const outbox = sql.id(s.orders.name, 'chassis_outbox');
        await sql`alter table ${outbox} add constraint refuse_rows check (false) not valid`.execute(db.kysely);
        const failed = await node
          .call(s.sellShares, { accountId: '101', symbol: 'BHP', quantity: 10 })
          .catch((error: unknown) => error);
        // The constraint's own error, as an unexpected failure reaches a caller.
        assert.equal((failed as ChassisError).code, 'INTERNAL', String(failed));
        assert.match((failed as ChassisError).message, /violates check constraint "refuse_rows"/);
        assert.equal(await count(db, s.orders.name, 'orders'), 0, 'the order row rolled back with its event');
        await sql`alter table ${outbox} drop constraint refuse_rows`.execute(db.kysely);
        await node.call(s.sellShares, { accountId: '101', symbol: 'BHP', quantity: 11 });
        await waitUntil(async () => (await count(db, s.ledger.name, 'reservations')) === 1, {
          what: 'the ledger to handle the second order_created',
        });
        assert.equal(await count(db, s.orders.name, 'orders'), 1);
      } finally {
        await node.stop();
        await db.close();
      }
    });

    it(`[${target.name}] a redelivered event has one effect; a failed attempt leaves nothing behind`, async () => {
      const s = slice();
      const { data, node } = await start([s.orders, s.ledger]);
      const raw = await cluster.transport();
      // The same event id twice, as a broker redelivers after a lost acknowledgement.
      const message = {
        headers: { id: 'evt-1', type: s.orderCreated.name },
        body: Buffer.from(JSON.stringify({ orderId: 'o-1', quantity: 5 })),
      };
      await raw.publish(s.orderCreated.name, message);
      await raw.publish(s.orderCreated.name, message);
      // An order whose first attempt fails after writing: the retry's effect is the only one.
      await node.call(s.sellShares, { accountId: '101', symbol: 'BHP', quantity: 13 });
      await waitUntil(async () => (await count(data, s.ledger.name, 'reservations')) === 2, { what: 'two effects' });
      await sleep(400);
      assert.equal(await count(data, s.ledger.name, 'reservations'), 2);
      assert.equal(await count(data, s.ledger.name, 'handled'), 2, 'each event handled once');
      assert.ok(s.runs.count >= 3, `the failed attempt ran too (${s.runs.count} runs)`);
    });

    it(`[${target.name}] commit(ctx) makes an action's first step durable: a later failure undoes only what came after`, async () => {
      const s = slice();
      const place = action(`${s.orders.name}.placeInSteps`, {
        input: z.object({ orderId: z.string() }),
        output: z.object({ ok: z.boolean() }),
      });
      const events: { type: string }[] = [];
      const orders = defineService({
        name: s.orders.name,
        migrations: new URL('orders/', fixtures),
        start: async (service) => {
          const store = await openEventStore(service, { schemas: { Placed: z.object({ step: z.number() }) } });
          events.push(...(await store.readStream('installed-check')));
        },
        actions: [
          handle(place, async ({ orderId }, ctx) => {
            const db = await database<OrdersTables>(ctx);
            await db
              .insertInto('orders')
              .values({ id: orderId, account_id: '101', symbol: 'BHP', quantity: 1 })
              .execute();
            await commit(ctx);
            // A new transaction: this write goes with the failure below.
            await (await database<OrdersTables>(ctx))
              .updateTable('orders')
              .set({ status: 'reserved' })
              .where('id', '=', orderId)
              .execute();
            throw new Error('the ledger said no');
          }),
        ],
      });
      const { data, node } = await start([orders]);
      const orderId = randomUUID();
      await assert.rejects(node.call(place, { orderId }), /the ledger said no/);
      const row = await sql<{ status: string }>`
        select status from ${sql.id(orders.name, 'orders')} where id = ${orderId}`.execute(data.database.kysely);
      assert.equal(row.rows[0]?.status, 'created', 'the committed insert stays; the update after it is gone');
      assert.deepEqual(events, [], 'the event store was installed in the service schema at start');
    });

    it(`[${target.name}] a handler's events are written together when it commits, in the order emitted; commit(ctx) takes those before it`, async () => {
      const s = slice();
      const announce = action(`${s.orders.name}.announce`, {
        input: z.object({ count: z.number().int(), failAfterCommit: z.boolean() }),
        output: z.object({ ok: z.boolean() }),
      });
      const orders = defineService({
        name: s.orders.name,
        migrations: new URL('orders/', fixtures),
        uses: [s.orderCreated],
        actions: [
          handle(announce, async ({ count, failAfterCommit }, ctx) => {
            for (let i = 1; i <= count; i++) await ctx.emit(s.orderCreated, { orderId: `o-${i}`, quantity: i });
            if (!failAfterCommit) return { ok: true };
            await commit(ctx);
            await ctx.emit(s.orderCreated, { orderId: 'after-commit', quantity: 99 });
            throw new Error('the ledger said no');
          }),
        ],
      });
      const seen: string[] = [];
      const listener = defineService({
        name: `listener-${cluster.suffix}`,
        events: [on(s.orderCreated, async ({ orderId }) => void seen.push(orderId))],
      });
      const { data, node } = await start([orders, listener]);
      const before = data.database.usage.statements;
      await node.call(announce, { count: 10, failAfterCommit: false });
      const statements = data.database.usage.statements - before;
      // One insert for the ten, and the relay's batch if it has begun: fewer statements than events.
      assert.ok(statements < 10, `ten events took ${statements} statements`);
      await waitUntil(() => seen.length === 10, { what: 'the ten events' });
      assert.deepEqual(
        seen,
        Array.from({ length: 10 }, (_, i) => `o-${i + 1}`),
        'in the order emitted',
      );
      seen.length = 0;
      await assert.rejects(node.call(announce, { count: 2, failAfterCommit: true }), /the ledger said no/);
      await waitUntil(() => seen.length === 2, { what: 'the events emitted before commit(ctx)' });
      await sleep(500);
      assert.deepEqual(seen, ['o-1', 'o-2'], 'what came before commit(ctx) is published; what came after is not');
    });

    it(`[${target.name}] an idempotent handler records no inbox row: a redelivery applies its upsert again and changes nothing; it cannot emit`, async () => {
      const s = slice();
      const runs: number[] = [];
      const emitted: string[] = [];
      const ledger = ledgerHandling(
        s,
        async ({ orderId, quantity }, ctx) => {
          runs.push(quantity);
          const db = await database<LedgerTables>(ctx);
          await db
            .insertInto('reservations')
            .values({ order_id: orderId, quantity })
            .onConflict((oc) => oc.column('order_id').doNothing())
            .execute();
          if (quantity === 7) {
            await ctx.emit(s.orderCreated, { orderId: 'echo', quantity: 1 }).catch((error: Error) => {
              emitted.push(error.message);
            });
          }
        },
        { idempotent: true, maxDeliveries: 1 },
      );
      const { data } = await start([ledger]);
      const raw = await cluster.transport();
      const message = {
        headers: { id: 'evt-idem', type: s.orderCreated.name },
        body: Buffer.from(JSON.stringify({ orderId: 'o-idem', quantity: 5 })),
      };
      await raw.publish(s.orderCreated.name, message);
      await raw.publish(s.orderCreated.name, message);
      await waitUntil(() => runs.length === 2, { what: 'both deliveries handled' });
      await raw.publish(s.orderCreated.name, {
        headers: { id: 'evt-emits', type: s.orderCreated.name },
        body: Buffer.from(JSON.stringify({ orderId: 'o-emits', quantity: 7 })),
      });
      await waitUntil(() => emitted.length === 1, { what: 'the refused emit' });
      assert.equal(await count(data, ledger.name, 'reservations'), 2, 'one row per order, however often delivered');
      assert.equal(await count(data, ledger.name, 'chassis_inbox'), 0, 'no inbox rows');
      assert.match(emitted[0]!, /declared idempotent/);
    });

    it(`[${target.name}] a handler idempotent 'with-emits' records no inbox row and emits with the change it makes once: a redelivery emits nothing`, async () => {
      const s = slice();
      const runs: string[] = [];
      const ledger = ledgerHandling(
        s,
        async ({ orderId, quantity }, ctx) => {
          runs.push(orderId);
          const db = await database<LedgerTables>(ctx);
          const inserted = await db
            .insertInto('reservations')
            .values({ order_id: orderId, quantity })
            .onConflict((oc) => oc.column('order_id').doNothing())
            .returning('order_id')
            .executeTakeFirst();
          if (inserted && orderId === 'o-once') await ctx.emit(s.orderCreated, { orderId: 'echo', quantity: 1 });
        },
        { idempotent: 'with-emits', maxDeliveries: 1 },
      );
      const { data } = await start([ledger]);
      const raw = await cluster.transport();
      const message = {
        headers: { id: 'evt-once', type: s.orderCreated.name },
        body: Buffer.from(JSON.stringify({ orderId: 'o-once', quantity: 5 })),
      };
      await raw.publish(s.orderCreated.name, message);
      await waitUntil(() => runs.includes('echo'), { what: 'the event emitted by the first delivery' });
      await raw.publish(s.orderCreated.name, message);
      await waitUntil(() => runs.filter((id) => id === 'o-once').length === 2, { what: 'the redelivery handled' });
      await sleep(500);
      assert.deepEqual(
        runs.filter((id) => id === 'echo'),
        ['echo'],
        'the redelivery found its row and emitted nothing',
      );
      assert.equal(await count(data, ledger.name, 'reservations'), 2);
      assert.equal(await count(data, ledger.name, 'chassis_inbox'), 0, 'no inbox rows');
    });

    it(`[${target.name}] executeLast: a handler's last statement commits its unit, emitted events with it; nothing may be written or emitted after it`, async () => {
      const s = slice();
      const place = action(`${s.orders.name}.placeLast`, {
        input: z.object({ orderId: z.string(), emit: z.boolean(), after: z.enum(['nothing', 'statement', 'emit']) }),
        output: z.object({ ok: z.boolean() }),
      });
      const orders = defineService({
        name: s.orders.name,
        migrations: new URL('orders/', fixtures),
        uses: [s.orderCreated],
        actions: [
          handle(place, async ({ orderId, emit, after }, ctx) => {
            const db = await database<OrdersTables>(ctx);
            await db
              .insertInto('orders')
              .values({ id: orderId, account_id: '101', symbol: 'BHP', quantity: 1 })
              .execute();
            if (emit) await ctx.emit(s.orderCreated, { orderId, quantity: 1 });
            await executeLast(
              sql`update ${sql.id(s.orders.name, 'orders')} set status = 'placed' where id = ${orderId}`,
              ctx,
            );
            if (after === 'statement') await sql`select 1`.execute(await database(ctx));
            if (after === 'emit') await ctx.emit(s.orderCreated, { orderId: `${orderId}-after`, quantity: 2 });
            return { ok: true };
          }),
        ],
      });
      const { data, node } = await start([orders, s.ledger]);
      const status = async (orderId: string) =>
        (
          await sql<{
            status: string;
          }>`select status from ${sql.id(orders.name, 'orders')} where id = ${orderId}`.execute(data.database.kysely)
        ).rows[0]?.status;
      const quiet = randomUUID();
      await node.call(place, { orderId: quiet, emit: false, after: 'nothing' });
      assert.equal(await status(quiet), 'placed', 'both statements committed');
      const announced = randomUUID();
      await node.call(place, { orderId: announced, emit: true, after: 'nothing' });
      assert.equal(await status(announced), 'placed');
      await waitUntil(
        async () =>
          (
            await sql<{ n: number }>`select count(*)::int as n from ${sql.id(s.ledger.name, 'reservations')}
              where order_id = ${announced}`.execute(data.database.kysely)
          ).rows[0]!.n === 1,
        { what: 'the event emitted before the last statement' },
      );
      // After it: a statement is refused, an emit throws. The unit committed with its last statement.
      await assert.rejects(
        node.call(place, { orderId: randomUUID(), emit: false, after: 'statement' }),
        /takes no statement after it/,
      );
      await assert.rejects(
        node.call(place, { orderId: randomUUID(), emit: false, after: 'emit' }),
        /after its last statement/,
      );
      // The connection a carried COMMIT left goes on serving.
      const later = randomUUID();
      await node.call(place, { orderId: later, emit: false, after: 'nothing' });
      assert.equal(await status(later), 'placed');
    });

    it(`[${target.name}] executeLast in an event handler commits with its inbox claim: a redelivery has one effect`, async () => {
      const s = slice();
      let runs = 0;
      const ledger = ledgerHandling(
        s,
        async ({ orderId, quantity }, ctx) => {
          runs++;
          await executeLast(
            sql`insert into ${sql.id(s.ledger.name, 'handled')} (order_id) values (${`${orderId}-${quantity}`})`,
            ctx,
          );
        },
        { maxDeliveries: 1 },
      );
      const { data } = await start([ledger]);
      const raw = await cluster.transport();
      const message = {
        headers: { id: 'evt-last', type: s.orderCreated.name },
        body: Buffer.from(JSON.stringify({ orderId: 'o-last', quantity: 3 })),
      };
      await raw.publish(s.orderCreated.name, message);
      await raw.publish(s.orderCreated.name, message);
      await waitUntil(async () => (await count(data, ledger.name, 'chassis_inbox')) === 1, { what: 'the claim' });
      await sleep(400);
      assert.equal(await count(data, ledger.name, 'handled'), 1, 'one effect');
      assert.ok(runs >= 1);
    });

    it(`[${target.name}] commit(ctx) is refused in an event handler, whose work commits with its inbox claim`, async () => {
      const s = slice();
      const errors: string[] = [];
      const ledger = ledgerHandling(
        s,
        async (_payload, ctx) => {
          await commit(ctx).catch((error: Error) => errors.push(error.message));
        },
        { maxDeliveries: 1 },
      );
      const { node } = await start([s.orders, ledger]);
      await node.call(s.sellShares, { accountId: '101', symbol: 'BHP', quantity: 1 });
      await waitUntil(() => errors.length === 1, { what: 'the refusal' });
      assert.match(errors[0]!, /commit\(ctx\) is for actions/);
    });

    it(`[${target.name}] a lost database connection is UNAVAILABLE: an action answers 503, an event waits and is handled once`, {
      skip: target.name === 'pglite' && 'PGlite runs in this process: it has no connection to lose',
    }, async () => {
      const s = slice();
      const loseConnection = action(`${s.orders.name}.loseConnection`, { input: z.object({}), output: z.object({}) });
      // The handler's own backend is terminated under it, as a database restart would.
      const terminateOwnBackend = async (ctx: Parameters<typeof database>[0]) =>
        sql`select pg_terminate_backend(pg_backend_pid())`.execute(await database(ctx));
      const orders = defineService({
        name: s.orders.name,
        migrations: new URL('orders/', fixtures),
        actions: [
          handle(loseConnection, async (_input, ctx) => {
            await terminateOwnBackend(ctx);
            return {};
          }),
        ],
      });
      let attempts = 0;
      const ledger = ledgerHandling(
        s,
        async ({ orderId, quantity }, ctx) => {
          if (++attempts === 1) await terminateOwnBackend(ctx);
          const db = await database<LedgerTables>(ctx);
          await db.insertInto('reservations').values({ order_id: orderId, quantity }).execute();
        },
        // A failure counted as an attempt would dead-letter it at once.
        { maxDeliveries: 1 },
      );
      const { data, node } = await start([orders, ledger]);
      await assert.rejects(node.call(loseConnection, {}), (error: ChassisError) => {
        assert.equal(error.code, 'UNAVAILABLE');
        assert.equal(error.status, 503);
        assert.match(error.message, /The database cannot be reached/);
        return true;
      });
      await node.emit(s.orderCreated, { orderId: 'o-lost', quantity: 4 });
      await waitUntil(async () => (await count(data, s.ledger.name, 'reservations')) === 1, {
        what: 'the event handled after the connection came back',
      });
      assert.equal(attempts, 2, 'redelivered once, not dead-lettered');
      // The pool replaced the lost connection: the service goes on.
      assert.equal(await count(data, s.ledger.name, 'reservations'), 1);
    });

    it(`[${target.name}] a server out of connections is UNAVAILABLE: an action answers 503, not 500`, {
      skip: target.name === 'pglite' && 'PGlite runs in this process: it has no connections to run out of',
    }, async () => {
      const s = slice();
      const adminUrl = await target.newDatabase();
      const url = new URL(adminUrl);
      // A role allowed few connections: what `max_connections` does to a busy server, without filling it.
      const role = `chassis_limited_${randomUUID().slice(0, 8)}`;
      const asAdmin = async (statement: string) => {
        const db = await Database.open(adminUrl);
        try {
          await sql.raw(statement).execute(db.kysely);
        } finally {
          await db.close();
        }
      };
      // Not a superuser: PostgreSQL holds superusers to no role's limit. Owning the database, it may migrate.
      await asAdmin(`create role ${role} login connection limit 3`);
      let node: Awaited<ReturnType<typeof cluster.startNode>> | undefined;
      try {
        await asAdmin(`alter database ${url.pathname.slice(1)} owner to ${role}`);
        const hold = action(`${s.orders.name}.hold`, { input: z.object({}), output: z.object({}) });
        const orders = defineService({
          name: s.orders.name,
          migrations: new URL('orders/', fixtures),
          actions: [
            handle(hold, async (_input, ctx) => {
              await sql`select pg_sleep(0.3)`.execute(await database(ctx));
              return {};
            }),
          ],
        });
        url.username = role;
        const data = dataExtension({ url: url.toString(), relayPollIntervalMs: 200 });
        node = await cluster.startNode([orders], { extensions: [data] });
        const running = node;
        const outcomes = await Promise.allSettled(Array.from({ length: 6 }, () => running.call(hold, {})));
        const failures = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason] : []));
        assert.ok(failures.length > 0, 'six transactions at once on three connections, one of them the relay’s');
        for (const error of failures as ChassisError[]) {
          assert.equal(error.code, 'UNAVAILABLE', error.message);
          assert.equal(error.status, 503);
          assert.equal(error.retryable, true);
          assert.match(error.message, /too many connections/);
        }
      } finally {
        await node?.stop();
        // Its schema, tables and the database itself go back to the admin; then nothing holds the role.
        await asAdmin(`reassign owned by ${role} to current_user; drop owned by ${role}; drop role ${role}`);
      }
    });

    it(`[${target.name}] the node's metrics count its database statements and transactions`, async () => {
      const s = slice();
      const { data, node } = await start([s.orders]);
      const sample = (text: string, name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
      const before = await node.metrics.registry.metrics();
      await node.call(s.sellShares, { accountId: '101', symbol: 'BHP', quantity: 10 });
      const after = await node.metrics.registry.metrics();
      const statements = sample(after, 'chassis_db_statements_total') - sample(before, 'chassis_db_statements_total');
      const commits =
        sample(after, 'chassis_db_transactions_total\\{outcome="commit"\\}') -
        sample(before, 'chassis_db_transactions_total\\{outcome="commit"\\}');
      // The order, its outbox row, at least; and the relay's own work, which runs on its own schedule.
      assert.ok(statements >= 2, `statements counted: ${statements}`);
      assert.ok(commits >= 1, `transactions counted: ${commits}`);
      // The figures are the database handle's own (which the relay has gone on adding to since).
      assert.ok(sample(after, 'chassis_db_statements_total') <= data.database.usage.statements);
    });

    it(`[${target.name}] a scrape looks at each outbox once, for all three of its gauges`, async () => {
      const s = slice();
      // A relay that does not poll within the test: whatever the scrape sends is the gauges' own.
      const data = dataExtension({ url: await target.newDatabase(), relayPollIntervalMs: 120_000 });
      const node = await cluster.startNode([s.orders], { extensions: [data] });
      // The relay's first look at its outbox, as it starts to lead, over before the scrape.
      let seen = -1;
      await waitUntil(
        async () => {
          const now = data.database.usage.statements;
          const still = now === seen;
          seen = now;
          if (!still) await sleep(300);
          return still;
        },
        { what: 'the relay to rest' },
      );
      const before = data.database.usage.statements;
      const text = await node.metrics.registry.metrics();
      // chassis_node_ready runs the readiness checks, the database's `select 1` among them; the rest is
      // the outbox's one look (it was three: one per gauge).
      assert.equal(data.database.usage.statements - before, 2, 'pending, oldest age and parked from one statement');
      for (const gauge of ['chassis_outbox_pending', 'chassis_outbox_lag_seconds', 'chassis_outbox_parked']) {
        assert.match(text, new RegExp(`^${gauge}\\{service="${s.orders.name}"\\} 0$`, 'm'));
      }
    });

    it(`[${target.name}] a node whose relay leads its service commits events without NOTIFY and tells the relay itself; another node's commits notify it`, async () => {
      const s = slice();
      const url = await target.newDatabase();
      // Polls too rare to explain anything below: whatever is published promptly was announced.
      const relayPollIntervalMs = 120_000;
      const leaderData = dataExtension({ url, relayPollIntervalMs });
      const leader = await cluster.startNode([s.orders, s.ledger], { extensions: [leaderData] });
      const notifications: string[] = [];
      const unlisten = await leaderData.database.listen(outboxChannel(s.orders.name), (payload) =>
        notifications.push(payload),
      );
      try {
        const handled = (n: number, what: string) =>
          waitUntil(async () => (await count(leaderData, s.ledger.name, 'reservations')) === n, {
            what,
            timeoutMs: 15_000,
          });
        // Published at all: this node's relay leads (it is the only one), whichever way the first was told.
        await leader.call(s.sellShares, { accountId: '101', symbol: 'BHP', quantity: 1 });
        await handled(1, 'the first order_created');
        notifications.length = 0;
        for (let i = 0; i < 3; i++) await leader.call(s.sellShares, { accountId: '101', symbol: 'BHP', quantity: 2 });
        await handled(4, 'order_created of the leading node, told in-process');
        assert.deepEqual(notifications, [], 'the leading node sent no NOTIFY');

        // A second instance of orders, which does not lead: its commit wakes the leader by NOTIFY. (It shares
        // the open database, which a PGlite in memory must; on PostgreSQL it would be the same as its URL.)
        const followerData = dataExtension({ database: leaderData.database, relayPollIntervalMs });
        const follower = await cluster.startNode([s.orders], { extensions: [followerData] });
        await follower.call(s.sellShares, { accountId: '101', symbol: 'BHP', quantity: 3 });
        await handled(5, 'order_created of the other node, announced by NOTIFY');
        assert.equal(notifications.length, 1, 'the other node notified once');
      } finally {
        await unlisten();
      }
    });

    it(`[${target.name}] readiness checks the database`, async () => {
      const s = slice();
      const { node } = await start([s.orders]);
      const report = await node.readiness();
      assert.equal(report.checks['database:connection']?.[0]?.status, 'pass');
    });
  });
}
