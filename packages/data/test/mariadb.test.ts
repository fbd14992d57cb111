import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { action, ChassisError, type ChassisNode, defineService, event, every, handle, on } from '@chassis/core';
import {
  claimInbox,
  Database,
  database,
  dataExtension,
  installInbox,
  installOutbox,
  isInInbox,
  MigrationFailed,
  migrate,
  OutboxRelay,
  openEventStore,
  outboxLag,
  sql,
  UnitOfWork,
  writeOutbox,
} from '@chassis/data';
import { freePort, memoryTarget, servers, skipUnlessUp, typescriptArgs, useCluster, waitUntil } from '@chassis/testing';
import { z } from 'zod';

/**
 * The data kit on MariaDB/MySQL (the local MariaDB): migrations and seed data once under concurrency, the
 * service's database created by them, units of work, the outbox relayed, the inbox deduping, and the
 * errors a service sees (a lost connection, a duplicate key, a wrong database or login). Each test's
 * services have databases of their own (`chassis_t_<random>`), dropped at the end.
 */
const fixtures = new URL('./fixtures/mysql/', import.meta.url);
const server = servers.mariadb.url;
const skip = await skipUnlessUp('mariadb');

describe('data kit on MariaDB', { skip }, () => {
  const made: string[] = [];
  let admin: Database;
  /** A new service name: its database is created by its migrations and dropped after the suite. */
  const serviceName = (what: string) => {
    const name = `chassis-t-${what}-${randomBytes(4).toString('hex')}`;
    made.push(name);
    return name;
  };

  before(async () => {
    admin = await Database.open(server);
  });
  after(async () => {
    for (const name of made) await sql`drop database if exists ${sql.id(name)}`.execute(admin.kysely);
    await admin.close();
  });

  it('applies each migration and its seed data once when several nodes start at once, in a database it creates', async () => {
    const service = serviceName('shop');
    const handles = await Promise.all([Database.open(server), Database.open(server)]);
    try {
      const folder = new URL('shop/', fixtures);
      const reports = await Promise.all([0, 1, 2, 3].map((i) => migrate(handles[i % 2]!, { service, folder })));
      const applied = reports.flatMap((report) => report.applied).sort();
      assert.deepEqual(applied, ['001_items.sql', '002_seed.sql'], 'each file applied by exactly one of them');
      const items = await handles[0]!
        .schema<{ items: { sku: string; details: unknown; stock: number; added_at: Date } }>(service)
        .selectFrom('items')
        .selectAll()
        .orderBy('sku')
        .execute();
      assert.deepEqual(
        items.map((item) => item.sku),
        ['AA-1', 'AA-2'],
        'the seed rows once',
      );
      assert.deepEqual(items[0]!.details, { cabin: 'economy', row: 12 }, 'a JSON column reads as its value');
      assert.equal(items[0]!.added_at.toISOString(), '2027-05-17T13:20:00.000Z', 'DATETIME read as UTC');
      const again = await migrate(handles[1]!, { service, folder });
      assert.deepEqual(again.applied, []);
      assert.deepEqual(again.alreadyApplied, ['001_items.sql', '002_seed.sql']);
    } finally {
      await Promise.all(handles.map((db) => db.close()));
    }
  });

  it('a migration that fails is rolled back (its data), not recorded, and names the file', async () => {
    const service = serviceName('broken');
    const error = await migrate(admin, { service, folder: new URL('broken/', fixtures) }).then(
      () => assert.fail('the migration should fail'),
      (caught: unknown) => caught as ChassisError,
    );
    assert.equal(error.code, MigrationFailed.code);
    assert.match(error.message, /002_fails\.sql/);
    const rows = await sql<{ id: number }>`select id from ${sql.id(service, 'things')} order by id`.execute(
      admin.kysely,
    );
    assert.deepEqual(
      rows.rows.map((row) => row.id),
      [1],
      'the failed file left nothing behind',
    );
    const recorded = await sql<{ name: string }>`select name from ${sql.id(service, 'chassis_migrations')}`.execute(
      admin.kysely,
    );
    assert.deepEqual(
      recorded.rows.map((row) => row.name),
      ['001_ok.sql'],
    );
  });

  it('a transaction commits all of it or none of it; a duplicate key is CONFLICT', async () => {
    const service = serviceName('uow');
    await migrate(admin, { service, folder: new URL('shop/', fixtures) });
    const items = () =>
      admin.schema<{ items: { sku: string; name: string; details: string; added_at: Date } }>(service);
    const row = (sku: string) => ({ sku, name: sku, details: '{}', added_at: new Date('2027-01-01T00:00:00Z') });
    await admin.transaction(async (trx) => {
      await trx
        .withSchema(service)
        .insertInto('items' as never)
        .values(row('C-1') as never)
        .execute();
    });
    await assert.rejects(
      admin.transaction(async (trx) => {
        await trx
          .withSchema(service)
          .insertInto('items' as never)
          .values(row('C-2') as never)
          .execute();
        throw new Error('changed my mind');
      }),
      /changed my mind/,
    );
    // A unit of work, as a handler has it: committed, then one rolled back.
    const committed = new UnitOfWork(admin, service);
    await (await committed.transaction())
      .withSchema(service)
      .insertInto('items' as never)
      .values(row('C-3') as never)
      .execute();
    await committed.commit();
    const rolledBack = new UnitOfWork(admin, service);
    await (await rolledBack.transaction())
      .withSchema(service)
      .insertInto('items' as never)
      .values(row('C-4') as never)
      .execute();
    await rolledBack.rollback();
    const skus = (await items().selectFrom('items').select('sku').orderBy('sku').execute()).map((r) => r.sku);
    assert.deepEqual(skus, ['AA-1', 'AA-2', 'C-1', 'C-3']);

    const duplicate = await items()
      .insertInto('items')
      .values(row('AA-1'))
      .execute()
      .then(
        () => assert.fail('a duplicate key should be refused'),
        (caught: unknown) => caught as ChassisError,
      );
    assert.ok(duplicate instanceof ChassisError);
    assert.equal(duplicate.code, 'CONFLICT');
    assert.equal(duplicate.status, 409);
    assert.match(duplicate.message, /Duplicate entry 'AA-1'/);
  });

  it('the inbox claims a message id once, per subscription', async () => {
    const service = serviceName('inbox');
    await installInbox(admin, service);
    const claim = () => admin.transaction((trx) => claimInbox(trx, service, `${service}.onThing`, 'msg-1'));
    assert.equal(await claim(), true, 'the first delivery');
    assert.equal(await claim(), false, 'a redelivery');
    assert.equal(await admin.transaction((trx) => claimInbox(trx, service, `${service}.other`, 'msg-1')), true);
    // A claim rolled back with its transaction leaves the id free.
    await assert.rejects(
      admin.transaction(async (trx) => {
        assert.equal(await claimInbox(trx, service, `${service}.onThing`, 'msg-2'), true);
        throw new Error('the handler failed');
      }),
    );
    assert.equal(await isInInbox(admin, service, `${service}.onThing`, 'msg-2'), false);
    await assert.rejects(
      admin.transaction((trx) => claimInbox(trx, service, `${service}.onThing`, 'x'.repeat(300))),
      (error: ChassisError) => error.code === 'BAD_MESSAGE',
    );
  });

  it('the outbox relay publishes committed rows in order, once; rolled-back ones never', async () => {
    const service = serviceName('outbox');
    await installOutbox(admin, service);
    const message = (n: number) => ({
      event: `${service}.thing_happened`,
      message: { headers: { id: `m-${n}` }, body: new TextEncoder().encode(`{"n":${n}}`) },
    });
    await admin.transaction((trx) => writeOutbox(trx, service, [message(1), message(2)]));
    await assert.rejects(
      admin.transaction(async (trx) => {
        await writeOutbox(trx, service, [message(3)]);
        throw new Error('rolled back');
      }),
    );
    await admin.transaction((trx) => writeOutbox(trx, service, [message(4)]));
    assert.equal((await outboxLag(admin, service)).pending, 3);
    const published: string[] = [];
    const relay = new OutboxRelay(admin, service, async (_event, wire) => {
      published.push(`${wire.headers.id}:${new TextDecoder().decode(wire.body)}`);
    });
    // Two relays at once: one batch at a time holds the lock, the other finds it busy.
    const other = new OutboxRelay(admin, service, async () => {
      throw new Error('this relay must not publish while the other holds the lock');
    });
    const [first, second] = await Promise.allSettled([relay.flush(), other.flush()]);
    assert.equal(first.status, 'fulfilled');
    if (second.status === 'fulfilled') assert.equal(second.value, 0);
    if (published.length === 0) await relay.flush();
    assert.deepEqual(published, ['m-1:{"n":1}', 'm-2:{"n":2}', 'm-4:{"n":4}']);
    assert.equal(await relay.flush(), 0, 'marked sent: not published again');
    assert.deepEqual(await outboxLag(admin, service), { pending: 0, parked: 0, oldestAgeMs: 0 });
  });

  it('a lost connection is UNAVAILABLE (retryable)', async () => {
    await admin.kysely.connection().execute(async (connection) => {
      const [row] = (await sql<{ id: number }>`select connection_id() as id`.execute(connection)).rows;
      const killer = await Database.open(server);
      try {
        await sql`kill ${sql.raw(String(row!.id))}`.execute(killer.kysely);
      } finally {
        await killer.close();
      }
      const error = await sql`select 1`.execute(connection).then(
        () => assert.fail('a killed connection should fail'),
        (caught: unknown) => caught as ChassisError,
      );
      assert.ok(error instanceof ChassisError, String(error));
      assert.equal(error.code, 'UNAVAILABLE');
      assert.equal(error.retryable, true);
    });
    // The pool drops the dead connection and goes on.
    assert.equal((await sql<{ one: number }>`select 1 as one`.execute(admin.kysely)).rows[0]?.one, 1);
  });

  it('while MariaDB cannot be reached a query is UNAVAILABLE; once it is back, the pool goes on', async () => {
    // A TCP proxy in front of the server, cut and restored: the outage as the pool sees it.
    const target = new URL(server);
    const port = await freePort();
    const sockets = new Set<Socket>();
    const listen = () => {
      const proxy = createServer((client) => {
        const upstream = netConnect(Number(target.port || 3306), target.hostname);
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('error', () => undefined);
          socket.on('close', () => sockets.delete(socket));
        }
        client.pipe(upstream).pipe(client);
      });
      return new Promise<typeof proxy>((resolve) => proxy.listen(port, '127.0.0.1', () => resolve(proxy)));
    };
    let proxy = await listen();
    const db = await Database.open(`mysql://${target.username || 'root'}@127.0.0.1:${port}/`);
    try {
      assert.equal((await sql<{ one: number }>`select 1 as one`.execute(db.kysely)).rows[0]?.one, 1);
      await new Promise<void>((resolve) => {
        proxy.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      const error = await sql`select 1`.execute(db.kysely).then(
        () => assert.fail('a query should fail while the server cannot be reached'),
        (caught: unknown) => caught as ChassisError,
      );
      assert.ok(error instanceof ChassisError, String(error));
      assert.equal(error.code, 'UNAVAILABLE');
      assert.equal(error.status, 503);
      assert.equal(error.retryable, true);
      proxy = await listen();
      await waitUntil(
        async () => {
          const result = await sql<{ one: number }>`select 1 as one`.execute(db.kysely).catch(() => undefined);
          return result?.rows[0]?.one === 1;
        },
        { what: 'the pool to reconnect', timeoutMs: 5000 },
      );
    } finally {
      await db.close();
      await new Promise<void>((resolve) => {
        proxy.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    }
  });

  it('a database that does not exist, a refused login or a server that is not there: CONFIG, CONFIG, UNAVAILABLE', async () => {
    const base = new URL(server);
    const unknown = await Database.open(`mysql://${base.username || 'root'}@${base.host}/chassis_no_such_db`).then(
      () => assert.fail('an unknown database should be refused'),
      (caught: unknown) => caught as ChassisError,
    );
    assert.equal(unknown.code, 'CONFIG');
    assert.match(unknown.message, /chassis_no_such_db/);
    assert.match(unknown.message, /CREATE DATABASE|leave the database out/);

    const refused = await Database.open(`mysql://chassis_nobody:wrong@${base.host}/`).then(
      () => assert.fail('a wrong login should be refused'),
      (caught: unknown) => caught as ChassisError,
    );
    assert.equal(refused.code, 'CONFIG');
    assert.match(refused.message, /Access denied/);
    assert.match(refused.message, /user and password/);
    assert.doesNotMatch(refused.message, /wrong/, 'the password is not in the message');

    const down = await Database.open(`mariadb://root@127.0.0.1:${await freePort()}/`).then(
      () => assert.fail('a server that is not there should be refused'),
      (caught: unknown) => caught as ChassisError,
    );
    assert.equal(down.code, 'UNAVAILABLE');
    assert.equal(down.retryable, true);
  });

  it('a user the server does not let create the service database gets CONFIG saying what to grant', async () => {
    const user = `chassis-t-${randomBytes(4).toString('hex')}`;
    await sql`create user ${user}@'%' identified by 'limited-pw'`.execute(admin.kysely);
    const base = new URL(server);
    const limited = await Database.open(`mysql://${user}:limited-pw@${base.host}/`);
    try {
      const error = await migrate(limited, {
        service: serviceName('refused'),
        folder: new URL('shop/', fixtures),
      }).then(
        () => assert.fail('the server should refuse to create the database'),
        (caught: unknown) => caught as ChassisError,
      );
      assert.equal(error.code, 'CONFIG', String(error));
      assert.match(error.message, /refused to create the database/);
      assert.match(error.message, /GRANT ALL ON/);
    } finally {
      await limited.close();
      await sql`drop user if exists ${user}@'%'`.execute(admin.kysely);
    }
  });

  it('closing lets the process exit at once', async () => {
    const script = new URL('./foundation/open-and-close.ts', import.meta.url).pathname;
    const child = spawn(process.execPath, [...typescriptArgs(), script, server, 'query'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let closedAt = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('closed')) closedAt = Date.now();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0);
    assert.ok(closedAt > 0, 'the child closed its database');
    assert.ok(Date.now() - closedAt < 1000, `the process lived ${Date.now() - closedAt} ms after closing`);
  });

  describe('in a node', () => {
    const cluster = useCluster(memoryTarget(), { redelivery: { initialDelayMs: 20, maxDelayMs: 50 } });

    it('a handler writes and emits in one unit of work; the consumer handles a redelivered event once', async () => {
      const shop = serviceName('shop');
      const audit = serviceName('audit');
      const reserve = action(`${shop}.reserve`, {
        input: z.object({ sku: z.string(), fail: z.boolean().optional() }),
        output: z.object({ stock: z.number() }),
      });
      const reserved = event(`${shop}.item_reserved`, z.object({ sku: z.string() }));
      const shopService = defineService({
        name: shop,
        migrations: new URL('shop/', fixtures),
        uses: [reserved],
        actions: [
          handle(reserve, async ({ sku, fail }, ctx) => {
            const db = await database<{ items: { sku: string; stock: number } }>(ctx);
            await db
              .updateTable('items')
              .set((eb) => ({ stock: eb('stock', '-', 1) }))
              .where('sku', '=', sku)
              .execute();
            await ctx.emit(reserved, { sku });
            if (fail) throw new Error('payment refused');
            const row = await db.selectFrom('items').select('stock').where('sku', '=', sku).executeTakeFirstOrThrow();
            return { stock: row.stock };
          }),
        ],
      });
      let runs = 0;
      const auditService = defineService({
        name: audit,
        migrations: new URL('audit/', fixtures),
        events: [
          on(reserved, async ({ sku }, ctx) => {
            runs++;
            const db = await database<{ reservations: { sku: string; message_id: string } }>(ctx);
            await db.insertInto('reservations').values({ sku, message_id: ctx.messageId }).execute();
          }),
        ],
      });
      const data = dataExtension({ url: server, relayPollIntervalMs: 5000 });
      const node = await cluster.startNode([shopService, auditService], { extensions: [data] });
      const db = data.database;
      const count = async () =>
        Number(
          (await sql<{ n: number }>`select count(*) as n from ${sql.id(audit, 'reservations')}`.execute(db.kysely))
            .rows[0]!.n,
        );

      const started = Date.now();
      assert.deepEqual(await node.call(reserve, { sku: 'AA-1' }), { stock: 2 });
      await waitUntil(async () => (await count()) === 1, {
        what: 'the audit to handle item_reserved',
        timeoutMs: 4000,
      });
      assert.ok(Date.now() - started < 4000, 'the relay was woken by the commit, not its 5 s poll');

      await assert.rejects(node.call(reserve, { sku: 'AA-1', fail: true }), /payment refused/);
      const stock = await sql<{ stock: number }>`select stock from ${sql.id(shop, 'items')} where sku = 'AA-1'`.execute(
        db.kysely,
      );
      assert.equal(stock.rows[0]?.stock, 2, 'the failed handler’s write rolled back');

      // The same event id twice, as a broker redelivers after a lost acknowledgement.
      const raw = await cluster.transport();
      const message = {
        headers: { id: 'evt-redelivered', type: reserved.name },
        body: new TextEncoder().encode(JSON.stringify({ sku: 'AA-2' })),
      };
      await raw.publish(reserved.name, message);
      await raw.publish(reserved.name, message);
      await waitUntil(async () => (await count()) === 2, { what: 'the redelivered event handled' });
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(await count(), 2, 'one effect for two deliveries, none for the rolled-back emit');
      assert.ok(runs >= 2);
      assert.deepEqual(await outboxLag(db, shop), { pending: 0, parked: 0, oldestAgeMs: 0 });
    });

    it('one node at a time runs a cluster schedule (its lease in MariaDB); when it stops, another takes over', async () => {
      const runs: { node: string; from: number; to: number }[] = [];
      const sweeper = defineService({
        name: serviceName('sweeper'),
        migrations: new URL('effects/', fixtures),
        schedules: [
          every('sweep', 40, async (ctx) => {
            const from = Date.now();
            const db = await database<{ effects: { message_id: string; node: string } }>(ctx);
            await db.insertInto('effects').values({ message_id: ctx.messageId, node: ctx.nodeId }).execute();
            await new Promise((resolve) => setTimeout(resolve, 15));
            runs.push({ node: ctx.nodeId, from, to: Date.now() });
          }),
        ],
      });
      // Two nodes, two pools: as two processes would have.
      const nodes: ChassisNode[] = [];
      for (const id of ['a', 'b']) {
        nodes.push(
          await cluster.startNode([sweeper], {
            nodeId: `${id}-${cluster.suffix}`,
            extensions: [dataExtension({ url: server })],
          }),
        );
      }
      await waitUntil(() => runs.length >= 6, { what: 'six runs' });
      const holder = runs[0]!.node;
      assert.ok(
        runs.every((run) => run.node === holder),
        `the holder keeps its lease: ${runs.map((r) => r.node).join(' ')}`,
      );
      await nodes.find((node) => node.id === holder)!.stop();
      const before = runs.length;
      await waitUntil(() => runs.slice(before).some((run) => run.node !== holder), {
        what: 'the other node to take the schedule over',
        timeoutMs: 10_000,
      });
      const sorted = [...runs].sort((a, b) => a.from - b.from);
      for (let i = 1; i < sorted.length; i++) {
        assert.ok(sorted[i]!.from >= sorted[i - 1]!.to, `runs never overlap, across nodes: ${JSON.stringify(sorted)}`);
      }
      await nodes.find((node) => node.id !== holder)!.stop();
      const written = await sql<{ n: number }>`select count(*) as n from ${sql.id(sweeper.name, 'effects')}`.execute(
        admin.kysely,
      );
      assert.equal(Number(written.rows[0]!.n), runs.length, 'every run wrote once');
    });

    it('a service asking for a PostgreSQL-only feature fails at start, naming it', async () => {
      const service = serviceName('events');
      const definition = defineService({
        name: service,
        migrations: new URL('shop/', fixtures),
        start: async (handle) => {
          await openEventStore(handle, {});
        },
      });
      const error = await cluster.startNode([definition], { extensions: [dataExtension({ url: server })] }).then(
        () => assert.fail('the node should not start'),
        (caught: unknown) => caught as ChassisError,
      );
      assert.equal(error.code, 'DATABASE_FEATURE_UNSUPPORTED', String(error));
      assert.match(error.message, /event store/);
    });
  });
});
