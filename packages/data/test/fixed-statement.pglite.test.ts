import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KyselyPlugin } from 'kysely';
import { Database, sql } from '../src/database.ts';
import { FixedStatement } from '../src/fixed-statement.ts';
import { schemaPlugin } from '../src/schema-plugin.ts';

/** Counts the statements it is shown, as a unit of work's span does. */
class Counter implements KyselyPlugin {
  count = 0;
  transformQuery: KyselyPlugin['transformQuery'] = (args) => {
    this.count++;
    return args.node;
  };
  transformResult: KyselyPlugin['transformResult'] = (args) => Promise.resolve(args.result);
}

describe('FixedStatement (PGlite)', () => {
  let db: Database;

  before(async () => {
    db = await Database.open('pglite://memory');
    await sql`create schema "fixed-test"`.execute(db.kysely);
    await sql`create table "fixed-test".items (id int primary key, name text not null)`.execute(db.kysely);
    await sql`insert into "fixed-test".items values (1, 'one'), (2, 'two'), (3, 'three')`.execute(db.kysely);
  });

  after(async () => {
    await db?.close();
  });

  const between = new FixedStatement<{ id: number; name: string }, [number, number]>(
    2,
    (low, high) => sql`
      select id, name from ${sql.id('fixed-test', 'items')}
      where id >= ${low} and id <= ${high} and id <> ${high} + 100
      order by id`,
  );

  it('runs its one text with each call’s parameters, a placeholder placed twice included', async () => {
    assert.deepEqual((await between.execute(db.kysely, 1, 2)).rows, [
      { id: 1, name: 'one' },
      { id: 2, name: 'two' },
    ]);
    assert.deepEqual((await between.execute(db.kysely, 3, 3)).rows, [{ id: 3, name: 'three' }]);
  });

  it('is shown to the executor’s plugins, once a call, and a schema plugin leaves it as it is', async () => {
    const counter = new Counter();
    const scoped = db.kysely.withPlugin(schemaPlugin('another')).withPlugin(counter);
    assert.deepEqual((await between.execute(scoped, 2, 3)).rows, [
      { id: 2, name: 'two' },
      { id: 3, name: 'three' },
    ]);
    await between.execute(scoped, 1, 1);
    assert.equal(counter.count, 2);
  });

  it('runs inside a transaction, on its connection', async () => {
    const trx = await db.kysely.startTransaction().execute();
    await sql`insert into "fixed-test".items values (4, 'four')`.execute(trx);
    assert.deepEqual((await between.execute(trx, 4, 4)).rows, [{ id: 4, name: 'four' }]);
    await trx.rollback().execute();
    assert.deepEqual((await between.execute(db.kysely, 4, 4)).rows, []);
  });

  it('refuses a text with a value that is not a placeholder: it would be fixed for every call', async () => {
    const fixedValue = new FixedStatement<{ id: number }, [number]>(
      1,
      (id) => sql`select id from ${sql.id('fixed-test', 'items')} where id = ${id} or name = ${'one'}`,
    );
    await assert.rejects(fixedValue.execute(db.kysely, 1), /not a placeholder/);
  });
});
