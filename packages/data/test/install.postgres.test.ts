import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Database, EventStore, installInbox, installOutbox, SagaRunner, sql } from '@chassis/data';
import { postgresTarget, waitUntil } from '@chassis/testing';

const target = await postgresTarget();

/**
 * A node starting beside a busy one installs the chassis tables again (inbox, outbox, event store,
 * sagas). That must not wait for the busy one's open transactions: an install queued behind them would
 * also make every later write to the table queue behind the install.
 */
describe('installing the chassis tables beside a busy instance: postgres', { skip: target.skip }, () => {
  after(() => target.cleanup());

  it('[postgres] a second install proceeds while a transaction holds write locks on every chassis table', async () => {
    const service = 'busy';
    const url = await target.newDatabase();
    const first = await Database.open(url);
    const second = await Database.open(url);
    // In turn, as a node does.
    const install = async (db: Database) => {
      await installOutbox(db, service);
      await installInbox(db, service);
      await new EventStore(db, { service }).install();
      await new SagaRunner(db, { service, sagas: [] }).install();
    };
    const busy = await first.kysely.startTransaction().execute();
    let installing: Promise<void> | undefined;
    try {
      await install(first);
      // What a handler in flight holds: a claimed inbox row, and the lock any insert, update or delete
      // takes on a table until its transaction ends.
      await sql`insert into ${sql.id(service, 'chassis_inbox')} (subscription, message_id) values ('s', 'm')`.execute(
        busy,
      );
      const tables = (
        await sql<{ name: string }>`select tablename as name from pg_tables where schemaname = ${service}`.execute(busy)
      ).rows.map((row) => row.name);
      for (const table of tables) await sql`lock table ${sql.id(service, table)} in row exclusive mode`.execute(busy);
      assert.ok(tables.length >= 7, `the chassis tables are there (${tables.join(', ')})`);

      let done = false;
      installing = install(second).then(() => {
        done = true;
      });
      // Either the install finishes, or it is seen waiting for a lock: no clock decides.
      let waiting: string | undefined;
      await waitUntil(
        async () => {
          if (done) return true;
          const blocked = await sql<{ query: string }>`
            select query from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock'`.execute(first.kysely);
          waiting = blocked.rows[0]?.query;
          return waiting !== undefined;
        },
        { what: 'the second install to finish or to wait', timeoutMs: 60_000, intervalMs: 20 },
      );
      assert.equal(waiting, undefined, `the second install waits for the busy transaction: ${waiting}`);
      await installing;
    } finally {
      await busy.rollback().execute();
      await installing?.catch(() => undefined);
      await second.close();
      await first.close();
    }
  });

  it('[postgres] the saga tables and the chassis tables installed at once into a new schema do not race', async () => {
    const db = await Database.open(await target.newDatabase());
    try {
      // `create schema if not exists` is not safe to run concurrently: both installs must take one lock.
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => `fresh-${i}`).flatMap((service) => [
          installInbox(db, service),
          new SagaRunner(db, { service, sagas: [] }).install(),
        ]),
      );
      const errors = results.flatMap((result) => (result.status === 'rejected' ? [String(result.reason)] : []));
      assert.deepEqual(errors, []);
    } finally {
      await db.close();
    }
  });

  it('[postgres] the outbox is vacuumed by a count of dead rows, set once: an install again changes no catalog row', async () => {
    const db = await Database.open(await target.newDatabase());
    try {
      const options = async () =>
        (
          await sql<{ reloptions: string[] | null; xmin: string }>`
            select reloptions, xmin::text from pg_class where oid = to_regclass('vacuumed.chassis_outbox')`.execute(
            db.kysely,
          )
        ).rows[0];
      await installOutbox(db, 'vacuumed');
      const first = await options();
      assert.deepEqual([...(first?.reloptions ?? [])].sort(), [
        'autovacuum_vacuum_scale_factor=0',
        'autovacuum_vacuum_threshold=1000',
      ]);
      await installOutbox(db, 'vacuumed');
      assert.equal((await options())?.xmin, first?.xmin, "the second install rewrote the table's catalog row");
    } finally {
      await db.close();
    }
  });
});
