import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChassisError } from '@chassis/core';
import { Database, sql } from '@chassis/data';
import { PGlite } from '@electric-sql/pglite';
import { isAbortedTransactionError, type RawBuilder } from 'kysely';
import { PglitePreparedStatements } from '../src/pglite-prepared.ts';
import { committing } from '../src/prepared-statements.ts';

describe("PGlite's prepared statements answer as its own query does", () => {
  let lite: PGlite;
  let statements: PglitePreparedStatements;
  before(async () => {
    lite = await PGlite.create();
    statements = new PglitePreparedStatements(lite, 256);
    await lite.exec(`
      create type mood as enum ('calm', 'busy');
      create table t (
        id int primary key, i2 smallint, i8 bigint, n numeric(12, 3), r real, d double precision,
        b boolean, s text, vc varchar(10), ch char(3), u uuid, j json, jb jsonb,
        ts timestamp, tstz timestamptz, dt date, tm time, iv interval, by bytea, m mood,
        ai int[], at text[], ab bigint[], ajb jsonb[], atstz timestamptz[]
      );
      insert into t values
        (1, 7, 9007199254740991, 1234.5, 1.5, 2.25, true, 'a "quoted" text', 'v', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
         '{"a": [1, 2]}', '{"b": {"c": null}}', '2026-12-05 05:00:00.123456', '2026-12-05 05:00:00.5+02', '2026-12-05',
         '12:34:56', '1 day 02:03:04', '\\xdeadbeef', 'busy', '{1,2,NULL}', '{"x","y z",NULL}', '{1,9007199254740991}',
         array['{"k": 1}'::jsonb], array['2026-01-01 00:00:00+00'::timestamptz]),
        (2, null, null, null, null, null, false, '', null, null, null, 'null', '[]', null, null, null, null, null, null, null,
         '{}', '{}', null, null, null),
        (3, null, -1, -0.001, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, 'calm',
         null, null, null, null, null);
    `);
  });
  after(async () => {
    await lite.close();
  });

  /** The same statement both ways: rows, types, counts and fields alike. */
  async function same(text: string, parameters: unknown[]) {
    const expected = await lite.query(text, parameters);
    const first = await statements.query(text, parameters);
    const again = await statements.query(text, parameters); // now prepared, bound and executed only
    for (const actual of [first, again]) {
      assert.deepEqual(actual.rows, expected.rows, text);
      assert.deepEqual(actual.fields, expected.fields, text);
      assert.equal(actual.affectedRows, expected.affectedRows, text);
      assert.equal(actual.rowCount, expected.rowCount, text);
      assert.equal(actual.command, expected.command, text);
    }
    return expected;
  }

  it('every column type, NULLs among them, and no rows at all', async () => {
    const all = await same('select * from t where id >= $1 order by id', [1]);
    assert.equal(all.rows.length, 3);
    assert.equal(typeof (all.rows[0] as { ts: unknown }).ts, 'object');
    await same('select * from t where id = $1', [42]);
    await same('select * from t where s = $1 and b = $2', ['a "quoted" text', true]);
    await same('select id, jb from t where jb @> $1::jsonb', [{ b: { c: null } }]);
    await same('select id from t where tstz < $1 or ts > $2', [new Date('2030-01-01'), new Date('2000-01-01')]);
    await same('select id from t where ai && $1 or at && $2', [[2, 5], ['y z']]);
    // bytea both ways (its parser and serializer are the data kit's own): empty, and every byte value.
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    await same('select id, by, $1::bytea as echoed from t where by = $2 or $1 = $3', [
      bytes,
      Buffer.from([0xde, 0xad, 0xbe, 0xef]),
      new Uint8Array(),
    ]);
    await same('select $1::int as a, $2::text as b, $3::bigint as c, $4::numeric as d, $5::boolean as e', [
      1,
      null,
      12,
      '1.50',
      false,
    ]);
    await same('select count(*) as n, sum(i8) as total from t where id <> $1', [0]);
    await same('with x as (select $1::int as v) select v from x', [5]);
  });

  it('insert, update and delete: affected rows and returning', async () => {
    await lite.exec('create table w (id serial primary key, v text, at timestamptz not null default now())');
    const inserted = await lite.query('insert into w (v) values ($1) returning id', ['a']);
    assert.equal(inserted.affectedRows, 1);
    await statements.query('insert into w (v) values ($1) returning id', ['b']);
    await same('update w set v = $1 where id > $2', ['c', 0]);
    await same('update w set v = $1 where id > $2 returning id, v', ['d', 0]);
    await same('update w set v = $1 where id < $2', ['e', 0]);
    const deleted = await statements.query('delete from w where v = $1', ['d']);
    assert.equal(deleted.affectedRows, 2);
    assert.equal((await same('select count(*)::int as n from w where v = $1', ['d'])).rows.length, 1);
  });

  it('an error is the one query throws: same class, SQLSTATE, message and detail', async () => {
    const fromQuery = await lite.query('insert into t (id) values ($1)', [1]).catch((error: unknown) => error);
    const prepared = await statements.query('insert into t (id) values ($1)', [1]).catch((error: unknown) => error);
    const again = await statements.query('insert into t (id) values ($1)', [1]).catch((error: unknown) => error);
    for (const error of [prepared, again]) {
      assert.equal((error as Error).constructor, (fromQuery as Error).constructor);
      for (const key of ['code', 'message', 'detail', 'constraint', 'table', 'severity', 'query']) {
        assert.deepEqual((error as Record<string, unknown>)[key], (fromQuery as Record<string, unknown>)[key], key);
      }
    }
    assert.equal((prepared as { code?: string }).code, '23505');
    // A statement PostgreSQL refuses to parse is not prepared, and fails alike every time.
    for (let i = 0; i < 2; i++) {
      await assert.rejects(statements.query('select nope from t where id = $1', [1]), { code: '42703' });
    }
  });
});

describe('a PGlite database prepares its repeated statements', () => {
  const open: Database[] = [];
  after(async () => {
    await Promise.allSettled(open.map((db) => db.close()));
  });
  async function database(): Promise<Database> {
    const db = await Database.open('pglite://memory');
    open.push(db);
    await sql`create table a (id text primary key, balance bigint not null)`.execute(db.kysely);
    await sql`insert into a values ('x', 10), ('y', 20)`.execute(db.kysely);
    return db;
  }

  it('counts statements as before, and a failed statement still aborts its transaction', async () => {
    const db = await database();
    const before = db.usage.statements;
    for (let i = 0; i < 3; i++) await sql`select balance from a where id = ${'x'}`.execute(db.kysely);
    assert.equal(db.usage.statements - before, 3);
    await assert.rejects(
      db.transaction(async (trx) => {
        await sql`update a set balance = balance + ${5} where id = ${'x'}`.execute(trx);
        await sql`insert into a values (${'y'}, ${1})`.execute(trx).catch(() => undefined);
        await sql`update a set balance = balance + ${5} where id = ${'y'}`.execute(trx);
      }),
      { code: '25P02' },
    );
    const rows = await sql<{ balance: number }>`select balance from a where id = ${'x'}`.execute(db.kysely);
    assert.deepEqual(rows.rows, [{ balance: 10 }]);
  });

  it('begin, commit and rollback are prepared too, and a transaction commits or rolls back as before', async () => {
    const db = await database();
    const commitsBefore = db.usage.commits;
    await db.transaction((trx) => sql`update a set balance = balance + ${1} where id = ${'x'}`.execute(trx));
    await assert.rejects(
      db.transaction(async (trx) => {
        await sql`update a set balance = balance + ${100} where id = ${'x'}`.execute(trx);
        throw new Error('the handler failed');
      }),
      /the handler failed/,
    );
    // A statement that fails aborts the transaction; its rollback still goes, and the next one works.
    await assert.rejects(
      db.transaction(async (trx) => {
        await sql`insert into a values (${'x'}, ${1})`.execute(trx);
      }),
      { code: '23505' },
    );
    await db.transaction((trx) => sql`update a set balance = balance + ${1} where id = ${'x'}`.execute(trx));
    const rows = await sql<{ balance: number }>`select balance from a where id = ${'x'}`.execute(db.kysely);
    assert.deepEqual(rows.rows, [{ balance: 12 }]);
    assert.equal(db.usage.commits - commitsBefore, 2 + 1, 'two transactions committed, one statement alone');
    const names = await sql<{ name: string }>`select name from pg_prepared_statements order by name`.execute(db.kysely);
    for (const control of ['chassis_begin', 'chassis_commit', 'chassis_rollback']) {
      assert.ok(
        names.rows.some((row) => row.name === control),
        `${control} prepared: ${names.rows.map((r) => r.name)}`,
      );
    }
  });

  it('BEGIN goes with the first statement: still one transaction, whatever that statement is or does', async () => {
    const db = await database();
    const txid = (on: typeof db.kysely) =>
      sql<{ id: string }>`select txid_current()::text as id, ${1}::int as one`.execute(on);
    // Prepared statements, and one without parameters (PGlite's exec) first: all in the same transaction.
    for (const first of [
      txid,
      (on: typeof db.kysely) => sql<{ id: string }>`select txid_current()::text as id`.execute(on),
    ]) {
      const [a, b, c] = await db.transaction(async (trx) => [await first(trx), await txid(trx), await txid(trx)]);
      assert.equal(a.rows[0]!.id, b.rows[0]!.id);
      assert.equal(b.rows[0]!.id, c.rows[0]!.id);
    }
    // A transaction that runs nothing, one whose first statement PostgreSQL refuses to prepare, one that
    // writes without parameters and rolls back: nothing is left open, nothing is written.
    await db.transaction(async () => undefined);
    await assert.rejects(
      db.transaction((trx) => sql`selec balance from a where id = ${'x'}`.execute(trx)),
      { code: '42601' },
    );
    await assert.rejects(
      db.transaction(async (trx) => {
        await sql`update a set balance = 0`.execute(trx);
        throw new Error('the handler failed');
      }),
      /the handler failed/,
    );
    const outside = await txid(db.kysely);
    assert.notEqual(
      outside.rows[0]!.id,
      (await txid(db.kysely)).rows[0]!.id,
      'each statement alone is its own transaction',
    );
    const rows = await sql<{ balance: number }>`select balance from a order by id`.execute(db.kysely);
    assert.deepEqual(rows.rows, [{ balance: 10 }, { balance: 20 }]);
  });

  it('a table changed under a prepared statement: run alone it is prepared anew; in a transaction, UNAVAILABLE', async () => {
    const db = await database();
    const select = (on: typeof db.kysely) => sql`select * from a where id = ${'x'}`.execute(on);
    await select(db.kysely);
    await select(db.kysely);
    await sql`alter table a add column note text`.execute(db.kysely);
    assert.deepEqual((await select(db.kysely)).rows, [{ id: 'x', balance: 10, note: null }]);

    await sql`alter table a add column since date`.execute(db.kysely);
    const failed = await db
      .transaction(async (trx) => {
        await select(trx);
      })
      .catch((error: unknown) => error);
    assert.ok(failed instanceof ChassisError, String(failed));
    assert.equal(failed.code, 'UNAVAILABLE');
    assert.deepEqual((await db.transaction(select)).rows, [{ id: 'x', balance: 10, note: null, since: null }]);
  });
  const balanceOf = async (db: Database, id: string) =>
    (await sql<{ balance: string }>`select balance::text from a where id = ${id}`.execute(db.kysely)).rows[0]?.balance;
  /** `query` as its transaction's last statement, which carries the COMMIT. */
  const last = (query: RawBuilder<unknown>) => ({
    execute: (on: Database['kysely']) => on.executeQuery(committing(query.compile(on))),
  });

  it('a statement marked `committing` carries its COMMIT: one call; the commit that follows is answered', async () => {
    const db = await database();
    const commitsBefore = db.usage.commits;
    // Alone in its transaction: BEGIN, the insert and COMMIT in one call.
    await db.transaction((trx) => last(sql`insert into a values (${'c1'}, ${1})`).execute(trx));
    // After other statements: all of them commit together.
    await db.transaction(async (trx) => {
      await sql`update a set balance = balance + ${1} where id = ${'x'}`.execute(trx);
      await last(sql`insert into a values (${'c2'}, ${2})`).execute(trx);
    });
    // Outside a transaction it is an ordinary statement.
    await last(sql`insert into a values (${'c3'}, ${3})`).execute(db.kysely);
    assert.equal(db.usage.commits - commitsBefore, 2 + 1, 'two transactions committed, one statement alone');
    assert.deepEqual(
      [await balanceOf(db, 'c1'), await balanceOf(db, 'x'), await balanceOf(db, 'c2'), await balanceOf(db, 'c3')],
      ['1', '11', '2', '3'],
    );
    // Nothing is left open: a transaction's writes are seen at once by the next reader, and roll back alone.
    await assert.rejects(
      db.transaction(async (trx) => {
        await sql`update a set balance = 0 where id = ${'c1'}`.execute(trx);
        throw new Error('the handler failed');
      }),
      /the handler failed/,
    );
    assert.equal(await balanceOf(db, 'c1'), '1');
  });

  it('a carrying statement that fails, or a COMMIT PGlite refuses, commits nothing; the connection serves on', async () => {
    const db = await database();
    const failed = await db
      .transaction(async (trx) => {
        await sql`insert into a values (${'f1'}, ${1})`.execute(trx);
        await last(sql`insert into a values (${'x'}, ${1})`).execute(trx);
      })
      .catch((error: unknown) => error);
    assert.equal((failed as { code?: unknown }).code, '23505');
    assert.equal(await balanceOf(db, 'f1'), undefined, 'the statement failed: no COMMIT ran, it rolled back');

    // A deferred constraint is checked at COMMIT: the carrier runs, the COMMIT is refused.
    await sql`create table refs (id int primary key, account text references a (id) deferrable initially deferred)`.execute(
      db.kysely,
    );
    const refused = await db
      .transaction(async (trx) => {
        await sql`insert into a values (${'f2'}, ${1})`.execute(trx);
        await last(sql`insert into refs values (${1}, ${'nobody'})`).execute(trx);
      })
      .catch((error: unknown) => error);
    assert.equal((refused as { code?: unknown }).code, '23503', 'the COMMIT’s foreign-key violation');
    assert.equal(await balanceOf(db, 'f2'), undefined);
    // Kysely's own COMMIT learns that the transaction rolled back when it is the one to ask.
    const trx = await db.kysely.startTransaction().execute();
    await sql`insert into a values (${'f3'}, ${1})`.execute(trx);
    const carried = await last(sql`insert into refs values (${2}, ${'nobody'})`)
      .execute(trx)
      .catch((error: unknown) => error);
    assert.equal((carried as { code?: unknown }).code, '23503');
    await assert.rejects(trx.commit().execute(), /rolled back|aborted/i);
    assert.equal(await balanceOf(db, 'f3'), undefined);
    // The connection serves on, in and out of transactions.
    await db.transaction((inner) => last(sql`insert into a values (${'f4'}, ${4})`).execute(inner));
    assert.equal(await balanceOf(db, 'f4'), '4');
  });

  it('a commit after a carrying statement that failed rolls back; the connection serves on', async () => {
    const db = await database();
    /** A transaction whose carrier fails (a duplicate key), which the caller sees and commits all the same. */
    const commitAfterFailedCarrier = (id: string, between: RawBuilder<unknown>[] = []) =>
      db
        .transaction(async (trx) => {
          await sql`insert into a values (${id}, ${1})`.execute(trx);
          const carried = await last(sql`insert into a values (${'x'}, ${1})`)
            .execute(trx)
            .catch((error: unknown) => error);
          assert.equal((carried as { code?: unknown }).code, '23505', 'the carrier’s own error, as it is');
          // Nothing runs after the carrier, with parameters or without: it would run outside the transaction.
          for (const statement of between) {
            const refused = await statement.execute(trx).catch((error: unknown) => error);
            assert.ok(refused instanceof ChassisError && refused.code === 'INTERNAL', String(refused));
          }
        })
        .catch((error: unknown) => error);
    // PostgreSQL's answer to a COMMIT in an aborted transaction is a ROLLBACK, and so is this one's.
    const failed = await commitAfterFailedCarrier('g1');
    assert.ok(isAbortedTransactionError(failed), String(failed));
    // The one connection is out of the aborted transaction: the next statement and transaction work.
    assert.equal(await balanceOf(db, 'g1'), undefined);
    await db.transaction(async (trx) => {
      await sql`insert into a values (${'g2'}, ${2})`.execute(trx);
      await last(sql`insert into a values (${'g3'}, ${3})`).execute(trx);
    });
    assert.deepEqual([await balanceOf(db, 'g2'), await balanceOf(db, 'g3')], ['2', '3']);
    // Statements refused after the carrier leave the commit as it was: rolled back.
    const refused = await commitAfterFailedCarrier('g4', [
      sql`insert into a values (${'g5'}, ${5})`,
      sql`insert into a values ('g6', 6)`,
    ]);
    assert.ok(isAbortedTransactionError(refused), String(refused));
    assert.deepEqual(
      [await balanceOf(db, 'g4'), await balanceOf(db, 'g5'), await balanceOf(db, 'g6')],
      [undefined, undefined, undefined],
    );
    await last(sql`insert into a values (${'g7'}, ${7})`).execute(db.kysely);
    assert.equal(await balanceOf(db, 'g7'), '7');
  });

  it('nothing runs after a statement that committed its transaction: it is refused, not run alone', async () => {
    const db = await database();
    const after = await db
      .transaction(async (trx) => {
        await last(sql`insert into a values (${'n1'}, ${1})`).execute(trx);
        await sql`insert into a values (${'n2'}, ${2})`.execute(trx);
      })
      .catch((error: unknown) => error);
    assert.ok(after instanceof ChassisError && after.code === 'INTERNAL', String(after));
    assert.equal(await balanceOf(db, 'n2'), undefined);
    await db.transaction((trx) => sql`insert into a values (${'n3'}, ${3})`.execute(trx));
    assert.equal(await balanceOf(db, 'n3'), '3');
  });
});
