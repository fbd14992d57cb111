import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ChassisError } from '@chassis/core';
import { Database, type DatabaseOptions, sql } from '@chassis/data';
import { postgresTarget } from '@chassis/testing';
import { isAbortedTransactionError, type RawBuilder } from 'kysely';
import { unavailableIfDisconnected } from '../src/database.ts';
import { committing, preparedStatementName } from '../src/prepared-statements.ts';

describe('which statements are prepared, under which name', () => {
  it('queries and DML with their text hashed into the name; the same text, the same name', () => {
    const select = preparedStatementName('select * from "orders"."orders" where "id" = $1');
    assert.match(select ?? '', /^chassis_[0-9a-f]{20}$/);
    assert.equal(preparedStatementName('select * from "orders"."orders" where "id" = $1'), select);
    assert.notEqual(preparedStatementName('select * from "orders"."orders" where "id" = $2'), select);
    for (const text of [
      'insert into t values ($1)',
      'update t set a = $1',
      'delete from t where a = $1',
      '  with x as (select $1) select * from x',
      'SELECT $1',
    ]) {
      assert.ok(preparedStatementName(text), text);
    }
  });

  it('not DDL, transaction control, settings, LISTEN or anything that starts with another word', () => {
    for (const text of [
      'begin',
      'commit',
      'rollback',
      'savepoint s1',
      'set local lock_timeout = $1',
      'create table t (id int)',
      'alter table t add column a int',
      'listen "orders"',
      'deallocate chassis_0123',
      '-- a comment\nselect $1',
      '(select $1) union (select $2)',
    ]) {
      assert.equal(preparedStatementName(text), undefined, text);
    }
  });
});

const target = await postgresTarget();

describe('PostgreSQL runs repeated statements as named prepared statements', { skip: target.skip }, () => {
  const open: Database[] = [];
  after(async () => {
    await Promise.allSettled(open.map((db) => db.close()));
    await target.cleanup();
  });

  /** One connection, so every statement lands on the session the test inspects. */
  async function oneConnection(url?: string, options: DatabaseOptions = {}): Promise<Database> {
    const db = await Database.open(url ?? (await target.newDatabase()), { poolSize: 1, ...options });
    open.push(db);
    return db;
  }

  /** What the session has prepared, and how often each ran (this query has no parameter: not prepared). */
  async function preparedOn(db: Database) {
    const result = await sql<{ statement: string; executions: number }>`
      select statement, generic_plans + custom_plans as executions from pg_prepared_statements
      order by statement`.execute(db.kysely);
    return result.rows;
  }

  async function withItems(db: Database): Promise<void> {
    await sql`create table items (id int primary key, label text not null)`.execute(db.kysely);
    await sql`insert into items values (1, 'one'), (2, 'two')`.execute(db.kysely);
  }

  const labelOf = (id: number) => sql<{ label: string }>`select label from items where id = ${id}`;

  it('[postgres] a repeated query is parsed once per connection and then executed by name', async () => {
    const db = await oneConnection();
    await withItems(db);
    const labels: string[] = [];
    for (const id of [1, 2, 1, 2, 1]) labels.push((await labelOf(id).execute(db.kysely)).rows[0]!.label);
    assert.deepEqual(labels, ['one', 'two', 'one', 'two', 'one']);
    assert.deepEqual(await preparedOn(db), [{ statement: 'select label from items where id = $1', executions: 5 }]);
  });

  it('[postgres] genericPlans: each statement is planned once per connection, not for each of its first runs', async () => {
    const url = await target.newDatabase();
    const generic = await oneConnection(url, { genericPlans: true });
    const auto = await oneConnection(url);
    await withItems(generic);
    const plans = async (db: Database) => {
      for (const id of [1, 2, 1, 2, 1, 2, 1]) await labelOf(id).execute(db.kysely);
      const { rows } = await sql<{ mode: string; generic: number; custom: number }>`
        select current_setting('plan_cache_mode') as mode, generic_plans::int as generic, custom_plans::int as custom
        from pg_prepared_statements`.execute(db.kysely);
      return rows;
    };
    // PostgreSQL's own choice: the first five runs planned for their parameters, then the generic plan.
    assert.deepEqual(await plans(auto), [{ mode: 'auto', generic: 2, custom: 5 }]);
    assert.deepEqual(await plans(generic), [{ mode: 'force_generic_plan', generic: 7, custom: 0 }]);
  });

  it('[postgres] rows read through a prepared statement are the rows read without one', async () => {
    const url = await target.newDatabase();
    const named = await oneConnection(url);
    const unnamed = await oneConnection(url, { preparedStatements: 0 });
    await sql`create table kinds (id int, big bigint, price numeric(12, 2), at timestamptz, doc jsonb, ok boolean,
      note text, tags text[])`.execute(named.kysely);
    await sql`insert into kinds values (1, 9007199254740991, 12.5, '2026-01-02T03:04:05Z', '{"a":[1,2]}', true,
      null, '{x,y}')`.execute(named.kysely);
    const read = (db: Database) => sql`select * from kinds where id = ${1}`.execute(db.kysely);
    // The first run describes its rows; later ones use the shape it kept, with no Describe sent.
    const [first, second, third, plain] = [
      await read(named),
      await read(named),
      await read(named),
      await read(unnamed),
    ];
    assert.deepEqual(second.rows, first.rows);
    assert.deepEqual(third.rows, first.rows);
    assert.deepEqual(first.rows, plain.rows);
    assert.equal(first.rows.length, 1);
    assert.ok((third.rows[0] as { at: unknown }).at instanceof Date, 'columns still parsed by their type');
    assert.equal((await preparedOn(unnamed)).length, 0, 'preparedStatements: 0 prepares nothing');
    assert.equal((await preparedOn(named)).length, 1);
  });

  it('[postgres] a statement prepared in a transaction that rolled back stays prepared and runs', async () => {
    const db = await oneConnection();
    await withItems(db);
    await assert.rejects(
      db.transaction(async (trx) => {
        await labelOf(1).execute(trx);
        throw new Error('changed my mind');
      }),
      /changed my mind/,
    );
    assert.equal((await labelOf(2).execute(db.kysely)).rows[0]!.label, 'two');
    assert.deepEqual(await preparedOn(db), [{ statement: 'select label from items where id = $1', executions: 2 }]);
  });

  it('[postgres] after a migration adds a column, the same select * returns it (outside a transaction)', async () => {
    const url = await target.newDatabase();
    const db = await oneConnection(url);
    const migrator = await oneConnection(url);
    await withItems(db);
    const everything = (id: number) => sql<Record<string, unknown>>`select * from items where id = ${id}`;
    assert.deepEqual((await everything(1).execute(db.kysely)).rows, [{ id: 1, label: 'one' }]);
    await sql`alter table items add column note text`.execute(migrator.kysely);
    const before = db.usage.statements;
    assert.deepEqual((await everything(1).execute(db.kysely)).rows, [{ id: 1, label: 'one', note: null }]);
    assert.equal(db.usage.statements - before, 1, 'the DEALLOCATE and the retry are not counted');
    assert.deepEqual(await preparedOn(db), [{ statement: 'select * from items where id = $1', executions: 1 }]);
  });

  it('[postgres] inside a transaction the changed plan is UNAVAILABLE (retryable) and the transaction runs again', async () => {
    const url = await target.newDatabase();
    const db = await oneConnection(url);
    const migrator = await oneConnection(url);
    await withItems(db);
    const everything = sql<Record<string, unknown>>`select * from items where id = ${2}`;
    await everything.execute(db.kysely);
    await sql`alter table items add column note text`.execute(migrator.kysely);
    const work = () =>
      db.transaction(async (trx) => {
        await sql`update items set label = ${'deux'} where id = ${2}`.execute(trx);
        return (await everything.execute(trx)).rows;
      });
    const error = await work().then(
      () => assert.fail('the transaction committed'),
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof ChassisError, String(error));
    assert.equal(error.code, 'UNAVAILABLE');
    assert.equal(error.retryable, true);
    assert.match(error.message, /cached plan must not change result type/);
    assert.deepEqual(await work(), [{ id: 2, label: 'deux', note: null }]);
    assert.equal(
      (await preparedOn(db)).filter((row) => row.statement.startsWith('select *')).length,
      1,
      'the stale statement was deallocated before it was prepared again',
    );
  });

  it('[postgres] a statement the server forgot (DEALLOCATE ALL) is prepared again', async () => {
    const db = await oneConnection();
    await withItems(db);
    await labelOf(1).execute(db.kysely);
    await sql`deallocate all`.execute(db.kysely);
    assert.equal((await labelOf(1).execute(db.kysely)).rows[0]!.label, 'one');
    assert.equal((await preparedOn(db)).length, 1);
  });

  it('[postgres] a connection keeps at most `preparedStatements` names; past them, statements run unnamed', async () => {
    const db = await oneConnection(undefined, { preparedStatements: 4 });
    const sums: number[] = [];
    for (let round = 0; round < 2; round++) {
      for (let n = 0; n < 10; n++) {
        // Ten texts: `select $1::int + 0`, `select $1::int + 1`, …
        sums.push(
          (await sql<{ sum: number }>`select ${n}::int + ${sql.lit(n)} as sum`.execute(db.kysely)).rows[0]!.sum,
        );
      }
    }
    assert.deepEqual(sums, [...[0, 2, 4, 6, 8, 10, 12, 14, 16, 18], ...[0, 2, 4, 6, 8, 10, 12, 14, 16, 18]]);
    const prepared = await preparedOn(db);
    assert.equal(prepared.length, 4);
    assert.ok(prepared.every((row) => row.executions === 2));
  });

  it('[postgres] errors of named statements are the errors of unnamed ones, and the statement stays usable', async () => {
    const db = await oneConnection();
    await withItems(db);
    const insert = (id: number, label: string) => sql`insert into items values (${id}, ${label})`.execute(db.kysely);
    await insert(3, 'three');
    const duplicate = await insert(3, 'again').catch((error: unknown) => error);
    assert.equal((duplicate as { code?: unknown }).code, '23505', 'a unique violation, as pg reports it');
    assert.ok(!(duplicate instanceof ChassisError));
    await insert(4, 'four');
    assert.deepEqual(await preparedOn(db), [{ statement: 'insert into items values ($1, $2)', executions: 3 }]);

    const misspelt = await sql`select labl from items where id = ${1}`.execute(db.kysely).catch((error) => error);
    assert.equal((misspelt as { code?: unknown }).code, '42703', 'refused at Parse: nothing prepared');
    assert.equal((await preparedOn(db)).length, 1);

    // Killed while checked out (an idle one the pool would just replace): its next statement fails.
    const killer = await oneConnection(undefined, { preparedStatements: 0 });
    const lost = await db
      .transaction(async (trx) => {
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
        await sql`select pg_terminate_backend(${rows[0]!.pid})`.execute(killer.kysely);
        await labelOf(1).execute(trx);
      })
      .then(
        () => assert.fail('the statement ran on a terminated connection'),
        (error: unknown) => unavailableIfDisconnected(error),
      );
    assert.ok(lost instanceof ChassisError, String(lost));
    assert.equal(lost.code, 'UNAVAILABLE');
    assert.equal((await labelOf(1).execute(db.kysely)).rows[0]!.label, 'one', 'a new connection prepares afresh');
  });

  /** The transaction id the statement runs in (a parameter makes it a named statement, sent with BEGIN). */
  const xactId = (tag: number) => sql<{ xact: string }>`select pg_current_xact_id()::text as xact, ${tag}::int as tag`;

  it('[postgres] BEGIN goes with the first statement: both statements of a transaction share it, a rollback undoes the first', async () => {
    const db = await oneConnection();
    await withItems(db);
    const ids = await db.transaction(async (trx) => [
      (await xactId(1).execute(trx)).rows[0]!.xact,
      (await xactId(2).execute(trx)).rows[0]!.xact,
    ]);
    assert.equal(ids[0], ids[1], 'one transaction, begun before the first statement');
    for (const prepared of [false, true]) {
      const failed = await db
        .transaction(async (trx) => {
          await sql`insert into items values (${10}, ${'ten'})`.execute(trx);
          await sql`select 1 / ${0}::int`.execute(trx);
        })
        .catch((error: unknown) => error);
      assert.equal((failed as { code?: unknown }).code, '22012', `division by zero (prepared before: ${prepared})`);
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from items where id = ${10}`.execute(
        db.kysely,
      );
      assert.equal(rows[0]!.n, 0, 'the insert rolled back with its transaction');
    }
    // Committed, it stays.
    await db.transaction((trx) => sql`insert into items values (${10}, ${'ten'})`.execute(trx));
    assert.equal((await labelOf(10).execute(db.kysely)).rows[0]!.label, 'ten');
  });

  it('[postgres] a transaction that runs no statement, or begins with an unnamed one, works as before', async () => {
    const db = await oneConnection();
    await withItems(db);
    await db.transaction(async () => undefined);
    await db.kysely
      .transaction()
      .execute(async () => {
        throw new Error('nothing ran');
      })
      .catch(() => undefined);
    const trx = await db.kysely.startTransaction().execute();
    await trx.rollback().execute();
    // A first statement without parameters is not named: BEGIN goes alone first, and it still holds.
    const failed = await db
      .transaction(async (inner) => {
        await sql`insert into items values (20, 'twenty')`.execute(inner);
        await sql`select 1 / ${0}::int`.execute(inner);
      })
      .catch((error: unknown) => error);
    assert.equal((failed as { code?: unknown }).code, '22012');
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from items where id = ${20}`.execute(db.kysely);
    assert.equal(rows[0]!.n, 0);
    const ids = await db.transaction(async (inner) => {
      await sql`select 1`.execute(inner);
      return [(await xactId(1).execute(inner)).rows[0]!.xact, (await xactId(2).execute(inner)).rows[0]!.xact];
    });
    assert.equal(ids[0], ids[1]);
  });

  it('[postgres] a first statement the server refuses to parse fails as it would alone; the connection serves on', async () => {
    const db = await oneConnection();
    await withItems(db);
    for (let i = 0; i < 2; i++) {
      const misspelt = await db
        .transaction((trx) => sql`select labl from items where id = ${1}`.execute(trx))
        .catch((error: unknown) => error);
      assert.equal((misspelt as { code?: unknown }).code, '42703', 'refused at Parse, each time alike');
    }
    const duplicate = await db
      .transaction((trx) => sql`insert into items values (${1}, ${'again'})`.execute(trx))
      .catch((error: unknown) => error);
    assert.equal((duplicate as { code?: unknown }).code, '23505');
    // Prepared by the failed transaction (Parse succeeded), it runs by name in the next one.
    await db.transaction((trx) => sql`insert into items values (${5}, ${'five'})`.execute(trx));
    assert.equal((await labelOf(5).execute(db.kysely)).rows[0]!.label, 'five');
    assert.ok(
      (await preparedOn(db)).some(
        (row) => row.statement === 'insert into items values ($1, $2)' && row.executions === 2,
      ),
    );
    assert.equal((await labelOf(1).execute(db.kysely)).rows[0]!.label, 'one');
  });

  const count = async (db: Database, id: number) =>
    (await sql<{ n: number }>`select count(*)::int as n from items where id = ${id}`.execute(db.kysely)).rows[0]!.n;
  /** `query` as its transaction's last statement, which carries the COMMIT. */
  const last = (query: RawBuilder<unknown>) => ({
    execute: (on: Database['kysely']) => on.executeQuery(committing(query.compile(on))),
  });
  /** An insert that carries its transaction's COMMIT. */
  const insertLast = (id: number, label: string) => last(sql`insert into items values (${id}, ${label})`);

  it('[postgres] a statement marked `committing` commits its transaction with it; Kysely’s COMMIT is answered', async () => {
    const db = await oneConnection();
    await withItems(db);
    // Alone in its transaction: BEGIN, the insert and COMMIT in one round trip.
    await db.transaction((trx) => insertLast(30, 'thirty').execute(trx));
    assert.equal((await labelOf(30).execute(db.kysely)).rows[0]!.label, 'thirty');
    // After other statements: all of them commit together.
    await db.transaction(async (trx) => {
      await sql`insert into items values (${31}, ${'thirty-one'})`.execute(trx);
      await insertLast(32, 'thirty-two').execute(trx);
    });
    assert.deepEqual([await count(db, 31), await count(db, 32)], [1, 1]);
    // Outside a transaction it is an ordinary statement.
    await insertLast(33, 'thirty-three').execute(db.kysely);
    assert.equal(await count(db, 33), 1);
  });

  it('[postgres] a carrying statement that fails, or a COMMIT the server refuses, commits nothing', async () => {
    const db = await oneConnection();
    await withItems(db);
    const failed = await db
      .transaction(async (trx) => {
        await sql`insert into items values (${40}, ${'forty'})`.execute(trx);
        await insertLast(1, 'taken').execute(trx);
      })
      .catch((error: unknown) => error);
    assert.equal((failed as { code?: unknown }).code, '23505');
    assert.equal(await count(db, 40), 0, 'the statement failed: no COMMIT ran, the transaction rolled back');

    // A deferred constraint is checked at COMMIT: the carrier runs, the COMMIT is refused.
    await sql`create table refs (id int primary key, item int references items (id) deferrable initially deferred)`.execute(
      db.kysely,
    );
    const refused = await db
      .transaction(async (trx) => {
        await sql`insert into items values (${41}, ${'forty-one'})`.execute(trx);
        await last(sql`insert into refs values (${1}, ${999})`).execute(trx);
      })
      .catch((error: unknown) => error);
    assert.equal((refused as { code?: unknown }).code, '23503', 'the COMMIT’s foreign-key violation');
    assert.equal(await count(db, 41), 0);
    // Kysely's own COMMIT is told the transaction rolled back when it is the one that learns it.
    const trx = await db.kysely.startTransaction().execute();
    await sql`insert into items values (${42}, ${'forty-two'})`.execute(trx);
    const carried = await last(sql`insert into refs values (${2}, ${999})`)
      .execute(trx)
      .catch((error: unknown) => error);
    assert.equal((carried as { code?: unknown }).code, '23503');
    await assert.rejects(trx.commit().execute(), /rolled back|aborted/i);
    assert.equal(await count(db, 42), 0);
    // The connection serves on, in and out of transactions.
    await db.transaction((inner) => insertLast(43, 'forty-three').execute(inner));
    assert.equal(await count(db, 43), 1);
  });

  it('[postgres] a commit after a carrying statement that failed rolls back at the server; the connection serves on', async () => {
    const db = await oneConnection();
    await withItems(db);
    /** A transaction whose carrier fails (a duplicate key), which the caller sees and commits all the same. */
    const commitAfterFailedCarrier = (id: number, between?: RawBuilder<unknown>) =>
      db
        .transaction(async (trx) => {
          await sql`insert into items values (${id}, ${'before the carrier'})`.execute(trx);
          const carried = await insertLast(1, 'taken')
            .execute(trx)
            .catch((error: unknown) => error);
          assert.equal((carried as { code?: unknown }).code, '23505', 'the carrier’s own error, as it is');
          if (!between) return;
          // Nothing runs after the carrier: it would run outside the transaction.
          const refused = await between.execute(trx).catch((error: unknown) => error);
          assert.ok(refused instanceof ChassisError && refused.code === 'INTERNAL', String(refused));
        })
        .catch((error: unknown) => error);
    // PostgreSQL's answer to a COMMIT in an aborted transaction is a ROLLBACK, and so is this one's.
    const failed = await commitAfterFailedCarrier(44);
    assert.ok(isAbortedTransactionError(failed), String(failed));
    // The one connection is out of the aborted transaction: the next statement and transaction work.
    assert.equal(await count(db, 44), 0);
    await db.transaction(async (trx) => {
      await sql`insert into items values (${45}, ${'forty-five'})`.execute(trx);
      await insertLast(46, 'forty-six').execute(trx);
    });
    assert.deepEqual([await count(db, 45), await count(db, 46)], [1, 1]);
    // A statement refused after the carrier leaves the commit as it was: rolled back.
    const refused = await commitAfterFailedCarrier(47, sql`insert into items values (${48}, ${'forty-eight'})`);
    assert.ok(isAbortedTransactionError(refused), String(refused));
    assert.deepEqual([await count(db, 47), await count(db, 48)], [0, 0]);
    await insertLast(49, 'forty-nine').execute(db.kysely);
    assert.equal(await count(db, 49), 1);
  });

  it('[postgres] nothing runs after a statement that committed its transaction: it is refused, not run alone', async () => {
    const db = await oneConnection();
    await withItems(db);
    const after = await db
      .transaction(async (trx) => {
        await insertLast(50, 'fifty').execute(trx);
        await sql`insert into items values (${51}, ${'fifty-one'})`.execute(trx);
      })
      .catch((error: unknown) => error);
    assert.ok(after instanceof ChassisError && after.code === 'INTERNAL', String(after));
    assert.equal(await count(db, 51), 0);
  });

  it('[postgres] a session of its own prepares its repeated statements too', async () => {
    const db = await oneConnection();
    const session = await db.openSession();
    assert.ok(session);
    try {
      for (const n of [1, 2, 3]) {
        assert.deepEqual(await session.query('select $1::int * 2 as twice', [n]), [{ twice: n * 2 }]);
      }
      assert.deepEqual(
        await session.query('select statement, generic_plans + custom_plans as executions from pg_prepared_statements'),
        [{ statement: 'select $1::int * 2 as twice', executions: 3 }],
      );
    } finally {
      await session.close();
    }
  });
});
