import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ChassisError, createTransport, type Transport, type WireMessage } from '@chassis/core';
import {
  type AnyTables,
  claimInbox,
  Database,
  InboxNotInstalled,
  installInbox,
  installOutbox,
  isInInbox,
  listParkedOutbox,
  type OutboxMessage,
  OutboxNotInstalled,
  OutboxRelay,
  type OutboxRelayOptions,
  outboxChannel,
  type ParkedOutboxRow,
  type Publish,
  type PublishInOrder,
  pruneInbox,
  pruneOutbox,
  replayParkedOutbox,
  sql,
  UnitOfWork,
  writeOutbox,
} from '@chassis/data';
import { type DatabaseTarget, rollbackIfOpen, typescriptArgs, waitUntil } from '@chassis/testing';
import type { Kysely } from 'kysely';
import { natsServerMissing, smallStreamNats } from './small-stream-nats.ts';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const crashRelay = fileURLToPath(new URL('./crash-relay.ts', import.meta.url));
const SUBSCRIPTION = 'market.order_created';

interface Published {
  event: string;
  message: WireMessage;
}

/** A broker stand-in: records what the relay published, in order. */
function recorder(): { got: Published[]; ids: () => string[]; publish: Publish } {
  const got: Published[] = [];
  return {
    got,
    ids: () => got.map((p) => p.message.headers.id ?? '?'),
    publish: async (event, message) => {
      got.push({ event, message });
    },
  };
}

function orderCreated(id: string, body: Uint8Array = Buffer.from(JSON.stringify({ orderId: id }))): OutboxMessage {
  return {
    event: 'orders.order_created',
    message: {
      headers: { id, type: 'orders.order_created', 'correlation-id': `c-${id}`, 'content-type': 'application/json' },
      body,
    },
  };
}

/** The outbox relay and the inbox, the same on PGlite and PostgreSQL. */
/**
 * Every row published and marked so. A relay marks a batch once its publishes are done, so a broker that
 * has every event may still see the marking commit a moment later.
 */
async function assertDrained(relay: OutboxRelay): Promise<void> {
  await waitUntil(async () => (await relay.lag()).pending === 0, { what: 'the published rows marked sent' });
  assert.deepEqual(await relay.lag(), { pending: 0, oldestAgeMs: 0, parked: 0 });
}

export function outboxSuite(target: DatabaseTarget): void {
  describe(`outbox and inbox: ${target.name}`, { skip: target.skip }, () => {
    const open: Database[] = [];
    const relays: OutboxRelay[] = [];
    after(async () => {
      await Promise.allSettled(relays.map((relay) => relay.stop()));
      await Promise.allSettled(open.map((db) => db.close()));
      await target.cleanup();
    });

    async function openDb(url: string): Promise<Database> {
      const db = await Database.open(url);
      open.push(db);
      return db;
    }

    /** A new database with a service whose outbox and inbox are installed, and a table for its effects. */
    async function fresh(options: { persistent?: boolean } = {}) {
      const url = await target.newDatabase(options);
      const db = await openDb(url);
      // A name that needs quoting and a hashed channel: the common case must not be the only one tested.
      const service = `orders-${randomBytes(3).toString('hex')}`;
      await installOutbox(db, service);
      await installInbox(db, service);
      await sql`create table ${sql.id(service, 'effects')} (message_id text not null)`.execute(db.kysely);
      return { url, db, service };
    }

    /** Another node on the same database: its own pool on PostgreSQL; PGlite is one process's, so shared. */
    async function anotherNode(url: string, db: Database): Promise<Database> {
      return target.name === 'pglite' ? db : openDb(url);
    }

    /** The backends holding an advisory lock in the test's database: a relay's leader, the only one there. */
    async function leaderPids(db: Database): Promise<number[]> {
      const held = await sql<{ pid: number }>`
        select pid from pg_locks
        where locktype = 'advisory' and granted
          and database = (select oid from pg_database where datname = current_database())`.execute(db.kysely);
      return held.rows.map((row) => row.pid);
    }

    const errors: unknown[] = [];
    async function startRelay(db: Database, service: string, publish: Publish, options: OutboxRelayOptions = {}) {
      const relay = new OutboxRelay(db, service, publish, { onError: (error) => errors.push(error), ...options });
      relays.push(relay);
      await relay.start();
      return relay;
    }

    /** A relay that leads and never polls within a test: only hand-overs, nudges and their looks publish. */
    async function startLeadingRelay(db: Database, service: string, publish: Publish) {
      const relay = await startRelay(db, service, publish, { pollIntervalMs: 60_000, idlePollIntervalMs: 60_000 });
      await waitUntil(() => relay.leads, { what: 'the relay to lead' });
      return relay;
    }

    /** An event handler: its effect and the message id commit together; a redelivery has no effect. */
    function consume(db: Database, service: string, messageId: string): Promise<boolean> {
      return db.transaction(async (trx) => {
        if (!(await claimInbox(trx, service, SUBSCRIPTION, messageId))) return false;
        await sql`insert into ${sql.id(service, 'effects')} (message_id) values (${messageId})`.execute(trx);
        return true;
      });
    }

    async function effects(db: Database, service: string): Promise<string[]> {
      const rows = await sql<{ message_id: string }>`
        select message_id from ${sql.id(service, 'effects')} order by message_id`.execute(db.kysely);
      return rows.rows.map((row) => row.message_id);
    }

    /** Failed publishes so far of each unsent row. */
    async function attempts(db: Database, service: string): Promise<number[]> {
      const rows = await sql<{ attempts: number }>`
        select attempts from ${sql.id(service, 'chassis_outbox')} where sent_at is null order by id`.execute(db.kysely);
      return rows.rows.map((row) => row.attempts);
    }

    it(`[${target.name}] committed events are published once, in order, as written, soon after the commit`, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      // A poll a minute apart: only the notification can explain a prompt publish.
      const relay = await startRelay(db, service, broker.publish, { pollIntervalMs: 60_000 });
      // A view into Node's shared buffer pool (non-zero offset), and bytes that are not UTF-8.
      const pooled = Buffer.from('{"orderId":"a1","note":"pooled"}');
      const binary = new Uint8Array([0, 255, 128, 10, 13, 0]);
      const started = performance.now();
      await db.transaction((trx) =>
        writeOutbox(trx, service, [orderCreated('a1', pooled), orderCreated('a2', binary)]),
      );
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('b1')]));
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('c1'), orderCreated('c2')]));
      await waitUntil(() => broker.got.length >= 5, { timeoutMs: 30_000, intervalMs: 2, what: 'five publishes' });
      const elapsed = performance.now() - started;
      // Half the poll's minute: only a wake-up explains it, with seconds of room for a loaded machine.
      assert.ok(elapsed < 30_000, `published ${Math.round(elapsed)} ms after the commits: the relay was woken`);
      await sleep(300);
      assert.deepEqual(broker.ids(), ['a1', 'a2', 'b1', 'c1', 'c2'], 'each once, in commit order');

      const [first, second] = broker.got;
      assert.equal(first?.event, 'orders.order_created');
      assert.deepEqual(first?.message.headers, orderCreated('a1').message.headers);
      assert.equal(Object.getPrototypeOf(first?.message.body), Uint8Array.prototype, 'a plain Uint8Array');
      assert.deepEqual(first?.message.body, new Uint8Array(pooled));
      assert.deepEqual(second?.message.body, binary);
      await assertDrained(relay);
      await relay.stop();
      assert.deepEqual(errors.splice(0), []);
    });

    it(`[${target.name}] a rolled-back transaction publishes nothing`, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      const relay = await startRelay(db, service, broker.publish, { pollIntervalMs: 100 });
      await assert.rejects(
        db.transaction(async (trx) => {
          await writeOutbox(trx, service, [orderCreated('never-1'), orderCreated('never-2')]);
          throw new Error('the handler failed');
        }),
        /the handler failed/,
      );
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('kept')]));
      await waitUntil(() => broker.got.length >= 1, { what: 'the committed event' });
      await sleep(400);
      assert.deepEqual(broker.ids(), ['kept']);
      const rows = await sql<{
        n: number;
      }>`select count(*)::int as n from ${sql.id(service, 'chassis_outbox')}`.execute(db.kysely);
      assert.equal(rows.rows[0]?.n, 1, 'nothing of the rolled-back transaction is stored');
      await relay.stop();
    });

    it(`[${target.name}] a relay that dies between publishing and marking: published again, applied once`, async () => {
      const { url, db, service } = await fresh({ persistent: true });
      await db.transaction((trx) =>
        writeOutbox(trx, service, [orderCreated('o-1'), orderCreated('o-2'), orderCreated('o-3')]),
      );
      // PGlite's folder is one process's at a time: hand it over to the relay's process.
      const handOver = target.name === 'pglite';
      if (handOver) await db.close();

      const child = spawn(process.execPath, [...typescriptArgs(), crashRelay, url, service, '3'], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
        child.on('exit', (_code, sig) => resolve(sig)),
      );
      assert.equal(signal, 'SIGKILL', `the relay process died as planned (stderr: ${stderr})`);
      const firstRun = stdout
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { id: string }).id);
      assert.deepEqual(firstRun, ['o-1', 'o-2', 'o-3'], 'it published everything before it died');

      const db2 = handOver ? await openDb(url) : db;
      const broker = recorder();
      const relay = new OutboxRelay(db2, service, broker.publish, { onError: (error) => errors.push(error) });
      assert.equal((await relay.lag()).pending, 3, 'its marks never committed');
      assert.equal(await relay.flush(), 3);
      assert.deepEqual(broker.ids(), ['o-1', 'o-2', 'o-3'], 'published again: at least once');
      assert.equal((await relay.lag()).pending, 0);

      // The consumer sees every delivery, both runs' — and applies each event once.
      const applied: boolean[] = [];
      for (const id of [...firstRun, ...broker.ids()]) applied.push(await consume(db2, service, id));
      assert.deepEqual(applied, [true, true, true, false, false, false]);
      assert.deepEqual(await effects(db2, service), ['o-1', 'o-2', 'o-3']);
    });

    it(`[${target.name}] a publish that fails after the broker took it: retried first, nothing lost or reordered`, async () => {
      const { db, service } = await fresh();
      const deliveries: string[] = [];
      let failed = false;
      // The broker stores the message, then its confirmation is lost.
      const publish: Publish = async (_event, message) => {
        deliveries.push(message.headers.id ?? '?');
        if (message.headers.id === 'p-3' && !failed) {
          failed = true;
          throw new Error('confirmation lost');
        }
      };
      const relay = await startRelay(db, service, publish, { pollIntervalMs: 100 });
      await db.transaction((trx) =>
        writeOutbox(
          trx,
          service,
          ['p-1', 'p-2', 'p-3', 'p-4', 'p-5'].map((id) => orderCreated(id)),
        ),
      );
      await waitUntil(async () => deliveries.length >= 6 && (await relay.lag()).pending === 0, { what: 'the retry' });
      assert.deepEqual(deliveries, ['p-1', 'p-2', 'p-3', 'p-3', 'p-4', 'p-5']);
      assert.equal(errors.length, 1, 'the failure was reported');
      assert.match(String(errors.splice(0)[0]), /confirmation lost/);
      for (const id of deliveries) await consume(db, service, id);
      assert.deepEqual(await effects(db, service), ['p-1', 'p-2', 'p-3', 'p-4', 'p-5']);
      await relay.stop();
    });

    it(`[${target.name}] a pipelining transport gets a batch in one call, in order; from a failure on, the rows go one at a time`, async () => {
      const { db, service } = await fresh();
      const pipelined: string[][] = [];
      const single: string[] = [];
      let failOnce = true;
      // Stores the rows up to q-3, refuses q-3 once (q-4 and q-5 may have reached the broker: not confirmed).
      const publishInOrder: PublishInOrder = async (events) => {
        const ids = events.map((e) => e.message.headers.id ?? '?');
        pipelined.push(ids);
        const at = ids.indexOf('q-3');
        if (at >= 0 && failOnce) {
          failOnce = false;
          return { stored: at, error: new Error('refused once') };
        }
        return { stored: ids.length };
      };
      const publish: Publish = async (_event, message) => {
        single.push(message.headers.id ?? '?');
      };
      const relay = await startRelay(db, service, publish, { pollIntervalMs: 100, publishInOrder });
      await db.transaction((trx) =>
        writeOutbox(
          trx,
          service,
          ['q-1', 'q-2', 'q-3', 'q-4', 'q-5'].map((id) => orderCreated(id)),
        ),
      );
      await waitUntil(async () => (await relay.lag()).pending === 0, { what: 'the rows marked sent' });
      assert.deepEqual(pipelined[0], ['q-1', 'q-2', 'q-3', 'q-4', 'q-5'], 'the batch in one call, in order');
      // q-3's failure ended the batch; the next one starts at q-3, pipelined again.
      assert.deepEqual(pipelined[1], ['q-3', 'q-4', 'q-5']);
      assert.deepEqual(single, [], 'nothing needed a publish of its own');
      assert.equal(errors.length, 1, 'the failure was reported');
      assert.match(String(errors.splice(0)[0]), /refused once/);
      await sleep(300);
      assert.equal(pipelined.length, 2, 'each row marked once stored: nothing published again');
      await relay.stop();
    });

    it(`[${target.name}] parkAfterAttempts: Infinity publishes one row at a time, even where the transport pipelines`, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      let calls = 0;
      const publishInOrder: PublishInOrder = async () => {
        calls++;
        return { stored: 0, error: new Error('not to be used') };
      };
      const relay = await startRelay(db, service, broker.publish, {
        pollIntervalMs: 100,
        parkAfterAttempts: Infinity,
        publishInOrder,
      });
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('s-1'), orderCreated('s-2')]));
      await waitUntil(async () => (await relay.lag()).pending === 0, { what: 'the rows marked sent' });
      assert.deepEqual(broker.ids(), ['s-1', 's-2']);
      assert.equal(calls, 0);
      await relay.stop();
    });

    it(`[${target.name}] two relays on one service never publish a row twice while both are healthy`, async () => {
      const { url, db, service } = await fresh();
      const other = await anotherNode(url, db);
      const broker = recorder();
      const slowPublish: Publish = async (event, message) => {
        await new Promise((resolve) => setImmediate(resolve));
        await broker.publish(event, message);
      };
      const options = { batchSize: 7, pollIntervalMs: 50 };
      const one = await startRelay(db, service, slowPublish, options);
      const two = await startRelay(other, service, slowPublish, options);
      const expected: string[] = [];
      for (let t = 0; t < 30; t++) {
        const ids = [`t${t}-a`, `t${t}-b`, `t${t}-c`];
        expected.push(...ids);
        await (t % 2 === 0 ? db : other).transaction((trx) =>
          writeOutbox(
            trx,
            service,
            ids.map((id) => orderCreated(id)),
          ),
        );
      }
      await waitUntil(() => broker.got.length >= expected.length, { what: 'every event' });
      await sleep(300);
      assert.deepEqual(broker.ids(), expected, 'each once, in order, whichever relay published it');
      await Promise.all([one.stop(), two.stop()]);
      assert.deepEqual(errors.splice(0), []);
    });

    it(`[${target.name}] one relay of a service leads and publishes every node's commits at once; when it stops, another takes over at once`, async () => {
      const { url, db, service } = await fresh();
      const other = await anotherNode(url, db);
      const published: { by: string; id: string }[] = [];
      const by =
        (relay: string): Publish =>
        async (_event, message) => {
          published.push({ by: relay, id: message.headers.id ?? '?' });
        };
      // Polls that have backed off towards a minute: only a notification or a new leader explains a prompt publish.
      const options = { pollIntervalMs: 300, idlePollIntervalMs: 60_000 };
      const a = await startRelay(db, service, by('a'), options);
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('first')]));
      await waitUntil(() => published.length === 1, { timeoutMs: 5000, intervalMs: 5, what: 'the first event' });
      await startRelay(other, service, by('b'), options);
      await sleep(1500);
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('from-a')]));
      await other.transaction((trx) => writeOutbox(trx, service, [orderCreated('from-b')]));
      await waitUntil(() => published.length === 3, { timeoutMs: 5000, intervalMs: 5, what: 'both nodes’ events' });
      assert.deepEqual(
        published,
        [
          { by: 'a', id: 'first' },
          { by: 'a', id: 'from-a' },
          { by: 'a', id: 'from-b' },
        ],
        'the leader publishes every node’s commits; the other relay waits',
      );

      // a's node drains: b leads at once and publishes what its node commits.
      await a.stop();
      const committed = Date.now();
      await other.transaction((trx) => writeOutbox(trx, service, [orderCreated('after-a')]));
      await waitUntil(() => published.length === 4, {
        timeoutMs: 10_000,
        intervalMs: 5,
        what: 'the event after a stopped',
      });
      assert.deepEqual(published[3], { by: 'b', id: 'after-a' });
      assert.ok(Date.now() - committed < 5000, 'published by the new leader, not by a backed-off poll');
      assert.deepEqual(errors.splice(0), []);
    });

    it(`[${target.name}] a leader whose connection dies (a killed process, a terminated backend): a relay leads again at once and publishes what came after`, {
      skip: target.name === 'pglite' && "PGlite is one process's database: its leader ends only with that process",
    }, async () => {
      const { url, db, service } = await fresh();
      const other = await anotherNode(url, db);
      const published: { by: string; id: string }[] = [];
      const by =
        (relay: string): Publish =>
        async (_event, message) => {
          published.push({ by: relay, id: message.headers.id ?? '?' });
        };
      // No poll within the test: only a new leader explains the publish.
      const options = { pollIntervalMs: 60_000 };
      await startRelay(db, service, by('a'), options);
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('first')]));
      await waitUntil(() => published.length === 1, { timeoutMs: 5000, intervalMs: 5, what: 'the first event' });
      await startRelay(other, service, by('b'), options);
      await sleep(300);
      const leaders = await leaderPids(db);
      assert.equal(leaders.length, 1, 'one leader');
      await sql`select pg_terminate_backend(${leaders[0]})`.execute(db.kysely);
      const terminated = Date.now();
      await other.transaction((trx) => writeOutbox(trx, service, [orderCreated('second')]));
      await waitUntil(() => published.length === 2, {
        timeoutMs: 10_000,
        intervalMs: 5,
        what: 'the event after the leader died',
      });
      // Whichever asks first leads: b, which waited, or a on a new connection (a killed process would not).
      assert.deepEqual(published[0], { by: 'a', id: 'first' });
      assert.equal(published[1]?.id, 'second');
      assert.ok(Date.now() - terminated < 2000, `led again ${Date.now() - terminated} ms after the leader died`);
      assert.equal((await leaderPids(db)).length, 1, 'one leader');
      // a was told its connection went, and waits to lead again.
      for (const error of errors.splice(0)) assert.match(String(error), /terminat|connection|cannot be reached/i);
    });

    it(`[${target.name}] a relay waiting to lead holds no snapshot, which would keep every dead row of the database from being pruned`, {
      skip: target.name === 'pglite' && "PGlite's relays wait in this process, not on the server",
    }, async () => {
      const { url, db, service } = await fresh();
      const other = await anotherNode(url, db);
      const noPublish: Publish = async () => undefined;
      await startRelay(db, service, noPublish);
      await startRelay(other, service, noPublish);
      await sleep(300);
      assert.equal((await leaderPids(db)).length, 1, 'one leader');
      // Sampled over more than one of the waiting relay's tries.
      for (let sample = 0; sample < 20; sample++) {
        const holding = await sql<{ query: string }>`
          select query from pg_stat_activity
          where datname = current_database() and backend_xmin is not null and wait_event_type = 'Lock'`.execute(
          db.kysely,
        );
        assert.deepEqual(holding.rows, [], 'sessions waiting for a lock with a snapshot: the horizon held back');
        await sleep(50);
      }
    });

    it(`[${target.name}] an event committed late by a transaction that started writing first is not skipped`, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      const relay = await startRelay(db, service, broker.publish, { pollIntervalMs: 50 });
      const long = await db.kysely.startTransaction().execute();
      try {
        // The smaller id, committed last.
        await writeOutbox(long, service, [orderCreated('slow-1')]);
        // On PostgreSQL this commits while the first is open; on PGlite (one connection) it waits for it.
        const quick = db.transaction((trx) => writeOutbox(trx, service, [orderCreated('quick-1')]));
        if (target.name === 'postgres') {
          await quick;
          await waitUntil(() => broker.got.length >= 1, { what: 'the event committed first' });
          assert.deepEqual(
            broker.ids(),
            ['quick-1'],
            'committed first, out first: an open transaction holds nothing back',
          );
        }
        await long.commit().execute();
        await quick;
      } finally {
        await rollbackIfOpen(long);
      }
      await waitUntil(() => broker.got.length >= 2, { what: 'both events' });
      await sleep(200);
      const expected = target.name === 'postgres' ? ['quick-1', 'slow-1'] : ['slow-1', 'quick-1'];
      assert.deepEqual(broker.ids(), expected, 'both, once, in the order they committed');
      await relay.stop();
    });

    it(`[${target.name}] a handler that waits for another's lock on an aggregate goes out after it, though it wrote first`, {
      skip: target.name === 'pglite' && 'PGlite is one connection: no transaction runs beside another',
    }, async () => {
      const { db, service } = await fresh();
      await sql`create table ${sql.id(service, 'aggregates')} (id text primary key, version int not null)`.execute(
        db.kysely,
      );
      await sql`insert into ${sql.id(service, 'aggregates')} values ('a', 0)`.execute(db.kysely);
      const broker = recorder();
      const relay = await startRelay(db, service, broker.publish, { pollIntervalMs: 50 });
      const lock = (trx: Kysely<AnyTables>) =>
        sql`select version from ${sql.id(service, 'aggregates')} where id = 'a' for update`.execute(trx);
      // The second handler takes its transaction id first (a write elsewhere), then queues for the lock
      // the first holds.
      let idTaken!: () => void;
      const taken = new Promise<void>((resolve) => {
        idTaken = resolve;
      });
      let lockHeld!: () => void;
      const held = new Promise<void>((resolve) => {
        lockHeld = resolve;
      });
      const second = db.transaction(async (trx) => {
        await sql`select txid_current()`.execute(trx);
        idTaken();
        await held;
        await lock(trx);
        await writeOutbox(trx, service, [orderCreated('second')]);
      });
      await taken;
      const first = await db.kysely.startTransaction().execute();
      try {
        await lock(first);
        lockHeld();
        await sleep(200);
        await writeOutbox(first, service, [orderCreated('first')]);
        await first.commit().execute();
        await second;
      } finally {
        await rollbackIfOpen(first);
      }
      await waitUntil(() => broker.got.length >= 2, { what: 'both events' });
      await sleep(200);
      assert.deepEqual(broker.ids(), ['first', 'second'], 'in the order the lock gave');
      await relay.stop();
    });

    it(`[${target.name}] a transaction left open on the server holds back no commit, nor makes the relay poll`, {
      skip: target.name === 'pglite' && 'PGlite is one connection: no transaction runs beside another',
    }, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      // No poll within the test: only the commit's notification can explain a publish.
      const relay = await startRelay(db, service, broker.publish, { pollIntervalMs: 60_000 });
      await sleep(300);
      const other = await db.kysely.startTransaction().execute();
      try {
        await sql`select txid_current()`.execute(other);
        const committed = Date.now();
        await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('not-held')]));
        await waitUntil(() => broker.got.length === 1, { timeoutMs: 30_000, intervalMs: 5, what: 'the event' });
        assert.ok(Date.now() - committed < 5000, `published ${Date.now() - committed} ms after its commit`);
        const before = db.usage.statements;
        await sleep(1000);
        assert.ok(db.usage.statements - before <= 2, 'the relay rests while the other transaction stays open');
        await other.commit().execute();
      } finally {
        await rollbackIfOpen(other);
      }
      await relay.stop();
    });

    it(`[${target.name}] rows handed over after their commit go out without being read back; a gap or a row not handed over sends the relay reading, in order`, {
      skip: target.name !== 'pglite' && "handing over is PGlite's, whose one connection is this process's",
    }, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      const relay = await startLeadingRelay(db, service, broker.publish);
      const write = async (id: string) => {
        const message = orderCreated(id);
        const rowId = await db.transaction((trx) => writeOutbox(trx, service, [message], { notify: false }));
        return [{ id: rowId!, ...message }];
      };
      const published = async (count: number) => {
        await waitUntil(() => broker.got.length === count, {
          timeoutMs: 10_000,
          intervalMs: 5,
          what: `${count} events`,
        });
        await sleep(200); // the batch's marking, after its publishes
      };
      // The first hand-over: the relay has read nothing yet, so it looks.
      assert.ok(relay.handOver(await write('a')));
      await published(1);
      const before = db.usage.statements;
      assert.ok(relay.handOver(await write('b')));
      await published(2);
      assert.equal(db.usage.statements - before, 2, 'the insert, and the batch marking it sent: no select');
      // An id a rolled-back insert took: the relay looks, and publishes the next row all the same.
      await db
        .transaction(async (trx) => {
          await writeOutbox(trx, service, [orderCreated('rolled-back')], { notify: false });
          throw new Error('rolled back');
        })
        .catch(() => undefined);
      assert.ok(relay.handOver(await write('c')));
      await published(3);
      // A row committed and not handed over, then one that is: both go, in the order written.
      await write('d');
      assert.ok(relay.handOver(await write('e')));
      await published(5);
      assert.deepEqual(broker.ids(), ['a', 'b', 'c', 'd', 'e']);
      await assertDrained(relay);
      await relay.stop();
      assert.equal(relay.handOver(await write('f')), false, 'a relay that does not lead takes nothing');
    });

    it(`[${target.name}] the leader marks what it published with its next look or the service's next outbox insert, not with an update a batch; a stop marks the rest`, {
      skip: target.name !== 'postgres' && 'the PostgreSQL leader reads the rows it publishes (PGlite hands them over)',
    }, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      const relay = await startLeadingRelay(db, service, broker.publish);
      const emitAndCommit = async (id: string) => {
        const work = new UnitOfWork(db, service, { notifies: () => false, takeMarks: () => relay.takeMarks() });
        work.emit(orderCreated(id));
        await work.commit();
        relay.nudge();
        await waitUntil(() => broker.ids().includes(id), { timeoutMs: 10_000, intervalMs: 2, what: id });
      };
      await emitAndCommit('first');
      await sleep(300);
      const before = db.usage.statements;
      for (let i = 1; i <= 5; i++) await emitAndCommit(`e-${i}`);
      const statements = db.usage.statements - before;
      // Each event: its insert (marking the row before it) and the leader's look; not an update as well.
      assert.ok(statements <= 10, `five events took ${statements} statements`);
      await assertDrained(relay);
      // Published and not marked when the relay stops: marked as it stops, not published again.
      await emitAndCommit('last');
      await relay.stop();
      assert.deepEqual(await relay.lag(), { pending: 0, oldestAgeMs: 0, parked: 0 });
      assert.deepEqual(broker.ids(), ['first', 'e-1', 'e-2', 'e-3', 'e-4', 'e-5', 'last']);
    });

    it(`[${target.name}] the leader reads and marks its outbox by index, though it planned its statements when the table was new and no ANALYZE has run since`, {
      skip: target.name !== 'postgres' && 'a PostgreSQL leader keeps its session, and its plans, as long as it leads',
    }, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      await startLeadingRelay(db, service, broker.publish);
      let written = 0;
      const commitAndPublish = async () => {
        const messages = Array.from({ length: 5 }, () => orderCreated(`e-${++written}`));
        await db.transaction((trx) => writeOutbox(trx, service, messages));
        // The leader's next look marks what it sent before, in its statement.
        await waitUntil(() => broker.got.length === written, { intervalMs: 2, what: `${written} rows published` });
      };
      // The leader plans its look and marking now, on the new table.
      for (let i = 0; i < 10; i++) await commitAndPublish();
      // The outbox grows, with no ANALYZE after it: rows sent long ago, say.
      await sql`
        insert into ${sql.id(service, 'chassis_outbox')} (event, headers, body, sent_at)
        select 'orders.order_created', '{}', decode(repeat('78', 200), 'hex'), now() from generate_series(1, 20000)`.execute(
        db.kysely,
      );
      for (let i = 0; i < 20; i++) await commitAndPublish();
      // Backends report their table counters when idle, some seconds late: wait for every marking's.
      const counters = async () => {
        const rows = await sql<{ seq_tup_read: string; n_tup_upd: string }>`
          select seq_tup_read, n_tup_upd from pg_stat_user_tables
          where schemaname = ${service} and relname = 'chassis_outbox'`.execute(db.kysely);
        return { read: Number(rows.rows[0]?.seq_tup_read), marked: Number(rows.rows[0]?.n_tup_upd) };
      };
      await waitUntil(async () => (await counters()).marked >= 150, {
        timeoutMs: 20_000,
        what: 'the markings counted',
      });
      // A look that marked by a sequential scan would have read all 20,000 rows.
      const { read } = await counters();
      assert.ok(read < 20_000, `sequential scans read ${read} rows of the outbox`);
      assert.equal(new Set(broker.ids()).size, 150);
    });

    it(`[${target.name}] handed-over rows once published are marked sent by the service's next outbox insert, in its statement; a rollback leaves them for the relay to mark`, {
      skip: target.name !== 'pglite' && "handing over is PGlite's, whose one connection is this process's",
    }, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      const relay = await startLeadingRelay(db, service, broker.publish);
      const unit = () => new UnitOfWork(db, service, { notifies: () => false, takeMarks: () => relay.takeMarks() });
      const emitAndCommit = async (id: string) => {
        const work = unit();
        work.emit(orderCreated(id));
        await work.commit();
        assert.ok(relay.handOver(work.written));
        await waitUntil(() => broker.ids().includes(id), { timeoutMs: 10_000, intervalMs: 2, what: id });
      };
      await emitAndCommit('first'); // the relay looks once: it has read nothing yet
      await sleep(300);
      const before = db.usage.statements;
      for (let i = 1; i <= 5; i++) await emitAndCommit(`e-${i}`);
      await sleep(300); // the last is marked by the relay itself, a moment later
      const statements = db.usage.statements - before;
      // Five inserts, each marking the row before it, and one marking the last: not an update each.
      assert.ok(statements <= 8, `five events took ${statements} statements`);
      // A transaction that took the marks and rolled back (its COMMIT refused): the relay marks them itself.
      const parent = sql.id(service, 'parent');
      const child = sql.id(service, 'child');
      await sql`create table ${parent} (id int primary key)`.execute(db.kysely);
      await sql`create table ${child} (parent int references ${parent} deferrable initially deferred)`.execute(
        db.kysely,
      );
      await emitAndCommit('before-rollback');
      const failing = unit();
      await sql`insert into ${child} values (1)`.execute(await failing.transaction());
      failing.emit(orderCreated('never'));
      await assert.rejects(failing.commit(), { code: '23503' });
      await assertDrained(relay);
      assert.equal(broker.ids().includes('never'), false);
      await relay.stop();
    });

    it(`[${target.name}] an idle relay that listens polls less and less; a commit still goes out at once`, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      const relay = await startRelay(db, service, broker.publish, { pollIntervalMs: 20, idlePollIntervalMs: 640 });
      // The waits double while the outbox stays empty: 20, 40, … 640 ms.
      await sleep(1500);
      const before = db.usage.statements;
      await sleep(1300);
      const idle = db.usage.statements - before;
      // At 20 ms a poll, 1.3 s would be 65 polls of three statements; at 640 ms, two or three.
      assert.ok(idle <= 12, `an idle relay's statements in 1.3 s: ${idle}`);
      const committed = Date.now();
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('after-idle')]));
      await waitUntil(() => broker.got.length === 1, { timeoutMs: 5000, intervalMs: 5, what: 'the event' });
      assert.ok(Date.now() - committed < 600, 'the commit woke the relay, no poll needed');
      await relay.stop();
    });

    it(`[${target.name}] without notifications, polling publishes what was waiting and what comes next`, async () => {
      const { db, service } = await fresh();
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('before-start')]));
      const broker = recorder();
      const relay = await startRelay(db, service, broker.publish, { listen: false, pollIntervalMs: 150 });
      await waitUntil(() => broker.got.length >= 1, { timeoutMs: 30_000, intervalMs: 5, what: 'the waiting event' });
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('after-start')]));
      await waitUntil(() => broker.got.length >= 2, { timeoutMs: 30_000, intervalMs: 5, what: 'the next poll' });
      assert.deepEqual(broker.ids(), ['before-start', 'after-start']);
      await relay.stop();
    });

    it(`[${target.name}] a leader's dropped connection is made again: what committed meanwhile goes out, and commits wake it without a poll`, {
      skip: target.name === 'pglite' && 'PGlite runs in this process: it has no connection to drop',
    }, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      // No poll within the test: only leading again, and then a notification, can make the relay publish.
      const relay = await startRelay(db, service, broker.publish, { pollIntervalMs: 600_000 });
      await waitUntil(async () => (await leaderPids(db)).length === 1, { what: 'the relay leading' });
      const [first] = await leaderPids(db);
      await sql`select pg_terminate_backend(${first})`.execute(db.kysely);
      // Committed while nobody listens: announced to no one, published once the relay leads again.
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('while-away')]));
      await waitUntil(async () => (await leaderPids(db)).some((pid) => pid !== first), {
        timeoutMs: 30_000,
        what: 'a new leading connection',
      });
      await waitUntil(() => broker.got.length >= 1, { timeoutMs: 30_000, intervalMs: 10, what: 'the missed event' });
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('after')]));
      await waitUntil(() => broker.got.length >= 2, { timeoutMs: 30_000, intervalMs: 10, what: 'the notified event' });
      assert.deepEqual(broker.ids(), ['while-away', 'after']);
      for (const error of errors.splice(0)) assert.match(String(error), /terminat|connection|cannot be reached/i);
      await relay.stop();
    });

    it(`[${target.name}] an event the broker refuses every time is parked, the relay goes on, and a replay publishes it once the broker takes it`, {
      skip: natsServerMissing,
    }, async () => {
      // A real refusal: a nats-server of the test's own whose events stream takes messages up to 4 KiB.
      const nats = await smallStreamNats(4096);
      let transport: Transport | undefined;
      let relay: OutboxRelay | undefined;
      try {
        transport = await createTransport(nats.url, { nodeId: `outbox-parking-${randomBytes(3).toString('hex')}` });
        await transport.connect();
        const broker = transport;
        const { db, service } = await fresh();
        const told: ParkedOutboxRow[] = [];
        const active = await startRelay(db, service, (event, message) => broker.publish(event, message), {
          pollIntervalMs: 100,
          parkAfterAttempts: 3,
          onParked: (row) => told.push(row),
        });
        relay = active;
        // Under NATS's max_payload (so sent whole, not claim-checked) and over the stream's limit.
        const big = orderCreated('k-big', Buffer.alloc(8192, 'x'));
        await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('k-1'), big, orderCreated('k-2')]));
        await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('k-3')]));

        await waitUntil(
          async () => {
            const lag = await active.lag();
            return lag.parked === 1 && lag.pending === 0;
          },
          { timeoutMs: 30_000, what: 'the refused event parked and the rest published' },
        );
        assert.deepEqual(await nats.ids(), ['k-1', 'k-2', 'k-3'], 'the events behind it went out, in order');
        const parked = await listParkedOutbox(db, service);
        assert.equal(parked.length, 1);
        const [row] = parked;
        assert.equal(row?.messageId, 'k-big');
        assert.equal(row?.event, 'orders.order_created');
        assert.ok((row?.attempts ?? 0) >= 3, `parked after ${row?.attempts} attempts, not before 3`);
        assert.match(row?.lastError ?? '', /refused by JetStream.*(size|maximum)/i, 'the broker’s own refusal is kept');
        assert.ok(row?.parkedAt instanceof Date);
        assert.deepEqual(
          told.map((r) => [r.id, r.messageId]),
          [[row?.id, 'k-big']],
          'the relay told about it once',
        );
        assert.ok(errors.length >= 1, 'the refusals were reported');
        errors.splice(0);

        // Parked, it holds nothing back.
        await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('k-4')]));
        await waitUntil(async () => (await nats.ids()).length === 4, { timeoutMs: 20_000, what: 'k-4' });
        const [still] = await listParkedOutbox(db, service);
        assert.equal(still?.attempts, row?.attempts, 'a parked row is not tried again until it is replayed');
        assert.equal(told.length, 1, 'nor parked again');
        // On PostgreSQL the leader marks what it published with its next read or 100 ms later, not at once.
        await waitUntil(async () => (await active.lag()).pending === 0, { what: 'k-4 marked sent' });
        assert.deepEqual(await active.lag(), { pending: 0, oldestAgeMs: 0, parked: 1 });

        // The operator raises the limit and replays it: published once, after the events that overtook it.
        await nats.raiseLimit(64 * 1024);
        assert.equal(await replayParkedOutbox(db, service, []), 0);
        assert.equal(await replayParkedOutbox(db, service, [row?.id ?? -1]), 1);
        await waitUntil(async () => (await nats.ids()).length === 5, { timeoutMs: 20_000, what: 'the replayed event' });
        assert.deepEqual(await nats.ids(), ['k-1', 'k-2', 'k-3', 'k-4', 'k-big']);
        await waitUntil(async () => (await active.lag()).pending === 0, { what: 'the replayed event marked sent' });
        assert.deepEqual(await active.lag(), { pending: 0, oldestAgeMs: 0, parked: 0 });
        assert.deepEqual(await listParkedOutbox(db, service), []);
        assert.equal(await replayParkedOutbox(db, service, 'all'), 0, 'nothing is left to replay');
      } finally {
        await relay?.stop();
        await transport?.close();
        await nats.stop();
      }
      assert.deepEqual(errors.splice(0), []);
    });

    it(`[${target.name}] a transport that refuses everything (it is down) parks nothing, however often; it all goes in order once it is back`, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      let down = true;
      const publish: Publish = async (event, message) => {
        if (down) throw new Error('connection refused');
        await broker.publish(event, message);
      };
      const told: ParkedOutboxRow[] = [];
      const relay = await startRelay(db, service, publish, {
        pollIntervalMs: 30,
        parkAfterAttempts: 2,
        onParked: (row) => told.push(row),
      });
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('d-1'), orderCreated('d-2')]));
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('d-3')]));
      // Every row past its parkAfterAttempts: each would be parked if failing were enough.
      await waitUntil(
        async () => (await relay.lag()).parked > 0 || (await attempts(db, service)).every((n) => n >= 4),
        { timeoutMs: 20_000, what: 'every row to fail several times' },
      );
      assert.equal((await relay.lag()).parked, 0, 'nothing parked while the transport takes nothing');
      assert.deepEqual(told, []);
      down = false;
      await waitUntil(() => broker.got.length >= 3, { timeoutMs: 20_000, what: 'the publishes after the outage' });
      assert.deepEqual(broker.ids(), ['d-1', 'd-2', 'd-3'], 'in order: the outage reordered nothing');
      await assertDrained(relay);
      await relay.stop();
      errors.splice(0);
    });

    it(`[${target.name}] a row that failed only while the transport was away is not parked: tried again after a later row went, it goes`, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      let calls = 0;
      // Away for the first two publishes — the head's last allowed attempts — and back for the next row.
      const publish: Publish = async (event, message) => {
        calls++;
        if (calls <= 2) throw new Error('connection refused');
        await broker.publish(event, message);
      };
      const told: ParkedOutboxRow[] = [];
      const relay = await startRelay(db, service, publish, {
        pollIntervalMs: 30,
        parkAfterAttempts: 2,
        onParked: (row) => told.push(row),
      });
      await db.transaction((trx) =>
        writeOutbox(
          trx,
          service,
          ['f-1', 'f-2', 'f-3'].map((id) => orderCreated(id)),
        ),
      );
      await waitUntil(() => broker.got.length >= 3, { timeoutMs: 20_000, what: 'every event' });
      assert.deepEqual(told, [], 'nothing parked');
      assert.deepEqual(
        broker.ids(),
        ['f-2', 'f-1', 'f-3'],
        'each once; the next row went first, to learn whether the transport was back',
      );
      await assertDrained(relay);
      await relay.stop();
      errors.splice(0);
    });

    it(`[${target.name}] parkAfterAttempts: Infinity never parks: a refused row holds back the rows behind it, in strict order`, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      let refuse = true;
      const publish: Publish = async (event, message) => {
        if (refuse && message.headers.id === 'i-2') throw new Error('too large');
        await broker.publish(event, message);
      };
      const relay = await startRelay(db, service, publish, { pollIntervalMs: 30, parkAfterAttempts: Infinity });
      await db.transaction((trx) =>
        writeOutbox(
          trx,
          service,
          ['i-1', 'i-2', 'i-3'].map((id) => orderCreated(id)),
        ),
      );
      await waitUntil(async () => (await attempts(db, service)).some((n) => n >= 5), {
        timeoutMs: 20_000,
        what: 'the refused row to fail several times',
      });
      assert.deepEqual(broker.ids(), ['i-1'], 'nothing overtook it');
      assert.equal((await relay.lag()).parked, 0);
      refuse = false;
      await waitUntil(() => broker.got.length >= 3, { timeoutMs: 20_000, what: 'the rest' });
      assert.deepEqual(broker.ids(), ['i-1', 'i-2', 'i-3']);
      await relay.stop();
      errors.splice(0);
      assert.throws(
        () => new OutboxRelay(db, service, publish, { parkAfterAttempts: 0 }),
        (error) => error instanceof ChassisError && error.code === 'CONFIG',
      );
    });

    it(`[${target.name}] lag() reports the rows waiting and the age of the oldest`, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      const relay = new OutboxRelay(db, service, broker.publish);
      await assertDrained(relay);
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('l-1'), orderCreated('l-2')]));
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('l-3')]));
      await sleep(120);
      const lag = await relay.lag();
      assert.equal(lag.pending, 3);
      assert.ok(lag.oldestAgeMs >= 100 && lag.oldestAgeMs < 10_000, `oldest waited ${lag.oldestAgeMs} ms`);
      assert.equal(await relay.flush(), 3);
      await assertDrained(relay);
    });

    it(`[${target.name}] stop() finishes the batch in progress and drains what is ready, then publishes nothing`, async () => {
      const { db, service } = await fresh();
      const broker = recorder();
      const slow: Publish = async (event, message) => {
        await sleep(20);
        await broker.publish(event, message);
      };
      const relay = await startRelay(db, service, slow, { pollIntervalMs: 60_000, batchSize: 5 });
      const ids = Array.from({ length: 12 }, (_, i) => `s-${String(i).padStart(2, '0')}`);
      await db.transaction((trx) =>
        writeOutbox(
          trx,
          service,
          ids.map((id) => orderCreated(id)),
        ),
      );
      await waitUntil(() => broker.got.length >= 1, { intervalMs: 2, what: 'the first batch to begin' });
      await relay.stop();
      assert.deepEqual(broker.ids(), ids, 'everything committed before the stop went out, in order');
      assert.equal((await relay.lag()).pending, 0, 'and was marked');
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('after-stop')]));
      await sleep(300);
      assert.equal(broker.got.length, ids.length, 'a stopped relay publishes nothing');
    });

    it(`[${target.name}] pruneOutbox deletes rows sent long enough ago and keeps unsent ones`, async () => {
      const { db, service } = await fresh();
      const relay = new OutboxRelay(db, service, recorder().publish);
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('x-1'), orderCreated('x-2')]));
      assert.equal(await relay.flush(), 2);
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('x-3')]));
      assert.equal(await pruneOutbox(db, service, 60_000), 0, 'sent just now: kept for debugging');
      await sleep(20);
      assert.equal(await pruneOutbox(db, service, 10), 2);
      assert.equal((await relay.lag()).pending, 1, 'the unsent row stays');
    });

    it(`[${target.name}] inbox: a claim is true once; it rolls back with its transaction, so a failed handler retries`, async () => {
      const { db, service } = await fresh();
      const claim = (id: string, subscription = SUBSCRIPTION) =>
        db.transaction((trx) => claimInbox(trx, service, subscription, id));
      assert.equal(await claim('m-1'), true);
      assert.equal(await claim('m-1'), false, 'a redelivery');
      assert.equal(await claim('m-1', 'market.audit'), true, 'another handler handles it once too');

      await assert.rejects(
        db.transaction(async (trx) => {
          assert.equal(await claimInbox(trx, service, SUBSCRIPTION, 'm-2'), true);
          throw new Error('the handler failed');
        }),
        /the handler failed/,
      );
      assert.equal(await isInInbox(db, service, SUBSCRIPTION, 'm-2'), false, 'the claim rolled back');
      assert.equal(await claim('m-2'), true, 'the retry runs the handler');
      assert.equal(await isInInbox(db, service, SUBSCRIPTION, 'm-1'), true);

      const empty = await claim('').catch((error: unknown) => error);
      assert.ok(empty instanceof ChassisError && empty.code === 'BAD_MESSAGE', 'a message without an id is refused');

      assert.equal(await pruneInbox(db, service, 60_000), 0, 'recent ids are kept');
      await sleep(20);
      assert.equal(await pruneInbox(db, service, 10), 3);
      assert.equal(await isInInbox(db, service, SUBSCRIPTION, 'm-1'), false);
    });

    it(`[${target.name}] inbox: two deliveries of one message handled at once have one effect`, async () => {
      const { url, db, service } = await fresh();
      const other = await anotherNode(url, db);
      const handle = (node: Database) =>
        node.transaction(async (trx) => {
          if (!(await claimInbox(trx, service, SUBSCRIPTION, 'twice'))) return false;
          await sleep(100);
          await sql`insert into ${sql.id(service, 'effects')} (message_id) values ('twice')`.execute(trx);
          return true;
        });
      const results = await Promise.all([handle(db), handle(other)]);
      assert.deepEqual(results.sort(), [false, true]);
      assert.deepEqual(await effects(db, service), ['twice']);
    });

    it(`[${target.name}] installing is idempotent and safe from several nodes at once; skipping it is named`, async () => {
      const url = await target.newDatabase();
      const db = await openDb(url);
      const other = await anotherNode(url, db);
      const service = `orders-${randomBytes(3).toString('hex')}`;

      const noOutbox = await db
        .transaction((trx) => writeOutbox(trx, service, [orderCreated('e-1')]))
        .catch((error: unknown) => error);
      assert.ok(OutboxNotInstalled.is(noOutbox));
      assert.match(noOutbox.message, new RegExp(`installOutbox\\(db, "${service}"\\)`));
      const noInbox = await db
        .transaction((trx) => claimInbox(trx, service, SUBSCRIPTION, 'e-1'))
        .catch((error: unknown) => error);
      assert.ok(InboxNotInstalled.is(noInbox));
      await assert.rejects(new OutboxRelay(db, service, recorder().publish).start(), (error) =>
        OutboxNotInstalled.is(error),
      );
      assert.throws(
        () => new OutboxRelay(db, service, recorder().publish, { batchSize: 0 }),
        (error) => error instanceof ChassisError && error.code === 'CONFIG',
      );

      await Promise.all([
        installOutbox(db, service),
        installOutbox(other, service),
        installInbox(db, service),
        installInbox(other, service),
      ]);
      await installOutbox(db, service);
      await installInbox(db, service);
      const tables = await sql<{ table_name: string }>`
        select table_name from information_schema.tables where table_schema = ${service} order by table_name`.execute(
        db.kysely,
      );
      assert.deepEqual(
        tables.rows.map((row) => row.table_name),
        ['chassis_inbox', 'chassis_outbox'],
      );
    });

    it(`[${target.name}] an outbox installed before parking existed gets its columns, and its waiting rows go out`, async () => {
      const url = await target.newDatabase();
      const db = await openDb(url);
      const service = `orders-${randomBytes(3).toString('hex')}`;
      // The table as the previous version created it.
      await sql`create schema ${sql.id(service)}`.execute(db.kysely);
      await sql`create table ${sql.id(service, 'chassis_outbox')} (
        id bigint generated always as identity primary key,
        xid xid8 not null default pg_current_xact_id(),
        event text not null,
        headers json not null,
        body bytea not null,
        created_at timestamptz not null default clock_timestamp(),
        sent_at timestamptz
      )`.execute(db.kysely);
      await db.transaction((trx) => writeOutbox(trx, service, [orderCreated('old-1')]));
      await installOutbox(db, service);
      const broker = recorder();
      const relay = new OutboxRelay(db, service, broker.publish);
      assert.deepEqual({ ...(await relay.lag()), oldestAgeMs: 0 }, { pending: 1, oldestAgeMs: 0, parked: 0 });
      assert.equal(await relay.flush(), 1);
      assert.deepEqual(broker.ids(), ['old-1']);
      assert.deepEqual(await listParkedOutbox(db, service), []);
    });

    it(`[${target.name}] relay channels are identifiers PostgreSQL keeps whole`, () => {
      assert.equal(outboxChannel('orders'), 'chassis_outbox_orders');
      const odd = outboxChannel(`Orders-Service.${'x'.repeat(80)}`);
      assert.match(odd, /^chassis_outbox_[a-z0-9_]+_[0-9a-f]{8}$/);
      assert.ok(Buffer.byteLength(odd) <= 63, odd);
      assert.notEqual(outboxChannel('orders-a'), outboxChannel('orders_a'));
    });
  });
}
