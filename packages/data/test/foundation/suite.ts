import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ChassisError } from '@chassis/core';
import { Database, MigrationFailed, migrate, sql } from '@chassis/data';
import { type DatabaseTarget, typescriptArgs, waitUntil } from '@chassis/testing';

const fixtures = new URL('../fixtures/migrations/', import.meta.url);

/** The client and per-service migrations, the same on PGlite and PostgreSQL. */
export function foundationSuite(target: DatabaseTarget): void {
  describe(`database client and migrations: ${target.name}`, { skip: target.skip }, () => {
    const open: Database[] = [];
    after(async () => {
      await Promise.allSettled(open.map((db) => db.close()));
      await target.cleanup();
    });
    async function fresh(): Promise<Database> {
      const db = await Database.open(await target.newDatabase());
      open.push(db);
      return db;
    }

    it(`[${target.name}] queries, commits and rolls back alike on both databases`, async () => {
      const db = await fresh();
      assert.equal(db.kind, target.name);
      await sql`create table accounts (id text primary key, cash_cents bigint not null)`.execute(db.kysely);
      await db.transaction(async (trx) => {
        await sql`insert into accounts values ('101', 1000000)`.execute(trx);
      });
      await assert.rejects(
        db.transaction(async (trx) => {
          await sql`insert into accounts values ('102', 250000)`.execute(trx);
          throw new Error('changed my mind');
        }),
        /changed my mind/,
      );
      const rows = await sql<{ id: string; cash_cents: number }>`select * from accounts order by id`.execute(db.kysely);
      assert.deepEqual(
        rows.rows,
        [{ id: '101', cash_cents: 1000000 }],
        'bigint reads as a number; the rollback left nothing',
      );
    });

    it(`[${target.name}] a closed database lets its process exit at once, whether or not it was queried`, async () => {
      const url = await target.newDatabase();
      for (const mode of ['query', 'no-query']) {
        // Before the fix, a database never queried kept its connections open: the process lived on
        // until pg's idle timeout (10 s) or, on PGlite, until killed.
        const lingeredMs = await msFromCloseToExit(url, mode);
        assert.ok(lingeredMs < 3000, `${mode}: the process lived ${lingeredMs} ms after close() returned`);
      }
    });

    it(`[${target.name}] counts the statements it sends and the transactions they run in`, async () => {
      const db = await fresh();
      const counts = () => ({ ...db.usage });
      const before = counts();
      // Alone: PostgreSQL runs and commits each in a transaction of its own.
      await sql`create table entries (id int primary key)`.execute(db.kysely);
      await db.transaction(async (trx) => {
        await sql`insert into entries values (1)`.execute(trx);
        await sql`insert into entries values (2)`.execute(trx);
      });
      await assert.rejects(
        db.transaction(async (trx) => {
          await sql`insert into entries values (3)`.execute(trx);
          throw new Error('changed my mind');
        }),
      );
      await db.kysely.selectFrom('entries').selectAll().execute();
      const after = counts();
      assert.deepEqual(
        {
          statements: after.statements - before.statements,
          commits: after.commits - before.commits,
          rollbacks: after.rollbacks - before.rollbacks,
        },
        { statements: 5, commits: 3, rollbacks: 1 },
      );
    });

    it(`[${target.name}] LISTEN/NOTIFY: a notification sent in a transaction arrives after it commits`, async () => {
      const db = await fresh();
      const heard: string[] = [];
      const stop = await db.listen('outbox_orders', (payload) => heard.push(payload));
      await db.transaction(async (trx) => {
        await sql`select pg_notify('outbox_orders', 'o-1')`.execute(trx);
        await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(heard, [], 'nothing before the commit');
      });
      await waitUntil(() => heard.length === 1, { what: 'the notification' });
      assert.deepEqual(heard, ['o-1']);
      await stop();
    });

    it(`[${target.name}] migrations apply in order into the service's own schema, once`, async () => {
      const db = await fresh();
      const service = `orders-${randomBytes(3).toString('hex')}`;
      const first = await migrate(db, { service, folder: new URL('orders/', fixtures) });
      assert.deepEqual(first.applied, ['001_orders.sql', '002_history.sql']);
      const again = await migrate(db, { service, folder: new URL('orders/', fixtures) });
      assert.deepEqual(again, { service, applied: [], alreadyApplied: ['001_orders.sql', '002_history.sql'] });
      const tables = await sql<{ table_name: string }>`
        select table_name from information_schema.tables where table_schema = ${service} order by table_name`.execute(
        db.kysely,
      );
      assert.deepEqual(
        tables.rows.map((r) => r.table_name),
        ['chassis_migrations', 'order_history', 'orders'],
      );
    });

    it(`[${target.name}] two migrators at once apply each file once`, async () => {
      const url = await target.newDatabase();
      const a = await Database.open(url);
      open.push(a);
      // PGlite is one process's database: the second migrator shares it; PostgreSQL gets a second pool.
      const b = target.name === 'pglite' ? a : await Database.open(url);
      if (b !== a) open.push(b);
      const service = `orders-${randomBytes(3).toString('hex')}`;
      const folder = new URL('orders/', fixtures);
      const [one, two] = await Promise.all([migrate(a, { service, folder }), migrate(b, { service, folder })]);
      assert.deepEqual([...one.applied, ...two.applied].sort(), ['001_orders.sql', '002_history.sql']);
    });

    it(`[${target.name}] a failing migration stops with the service and file named; nothing of it is left`, async () => {
      const db = await fresh();
      const service = `fees-${randomBytes(3).toString('hex')}`;
      const error = await migrate(db, { service, folder: new URL('broken/', fixtures) }).catch((e: unknown) => e);
      assert.ok(MigrationFailed.is(error));
      assert.match(error.message, new RegExp(`002_refunds.sql of service "${service}" failed and was rolled back`));
      assert.match(error.message, /uuid/);
      const tables = await sql<{ table_name: string }>`
        select table_name from information_schema.tables where table_schema = ${service} order by table_name`.execute(
        db.kysely,
      );
      assert.deepEqual(
        tables.rows.map((r) => r.table_name),
        ['chassis_migrations', 'fees'],
        'the file before it stands; nothing of the failed one does',
      );
    });

    it(`[${target.name}] editing an applied migration is refused; a missing folder is a CONFIG error`, async () => {
      const db = await fresh();
      const service = `orders-${randomBytes(3).toString('hex')}`;
      const folder = mkdtempSync(join(tmpdir(), 'chassis-migrations-'));
      cpSync(new URL('orders/', fixtures), folder, { recursive: true });
      await migrate(db, { service, folder });
      writeFileSync(join(folder, '001_orders.sql'), 'create table orders (id uuid primary key);');
      await assert.rejects(migrate(db, { service, folder }), /001_orders.sql .* was changed after it was applied/);
      const missing = await migrate(db, { service, folder: join(folder, 'nope') }).catch((e: unknown) => e);
      assert.ok(missing instanceof ChassisError);
      assert.equal(missing.code, 'CONFIG');
      assert.match(missing.message, /migrations folder of service/);
    });
  });
}

/** Runs open-and-close.ts on `url` and measures the time from its "closed" to its exit. */
function msFromCloseToExit(url: string, mode: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const script = new URL('./open-and-close.ts', import.meta.url).pathname;
    const child = spawn(process.execPath, [...typescriptArgs(), script, url, mode], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let closedAt: number | undefined;
    const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('closed')) closedAt ??= performance.now();
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(kill);
      if (closedAt === undefined) reject(new Error(`open-and-close ${mode} ended (${code ?? signal}) without closing`));
      else resolve(Math.round(performance.now() - closedAt));
    });
  });
}
