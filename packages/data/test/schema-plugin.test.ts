import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DummyDriver,
  type Kysely,
  Kysely as KyselyClass,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
} from 'kysely';
import { schemaPlugin } from '../src/schema-plugin.ts';

// biome-ignore lint/suspicious/noExplicitAny: statements of every shape, on tables the test makes up
type Db = Kysely<any>;

const db: Db = new KyselyClass({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (k) => new PostgresIntrospector(k),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

/** Statements of the shapes services write: each compiled with Kysely's `withSchema` and with the plugin. */
const statements: Record<string, (k: Db) => { compile(): { sql: string; parameters: readonly unknown[] } }> = {
  select: (k) => k.selectFrom('accounts').select(['id', 'cash']).where('customer_id', '=', 'c1'),
  'select with qualified columns and for update': (k) =>
    k.selectFrom('accounts').select(['accounts.id', 'accounts.cash']).where('accounts.id', '=', 'a').forUpdate(),
  'select for update of a table': (k) =>
    k
      .selectFrom('accounts')
      .innerJoin('holdings', 'holdings.account_id', 'accounts.id')
      .selectAll()
      .forUpdate('accounts'),
  'aliased table and join': (k) =>
    k
      .selectFrom('orders as o')
      .leftJoin('fills as f', 'f.order_id', 'o.id')
      .select(['o.id', 'f.quantity'])
      .where('o.status', 'in', ['new', 'placed']),
  'subquery in where': (k) =>
    k
      .selectFrom('orders')
      .selectAll()
      .where('id', 'in', k.selectFrom('fills').select('fills.order_id').where('fills.quantity', '>', 0)),
  'exists and a correlated reference': (k) =>
    k
      .selectFrom('orders')
      .select('orders.id')
      .where(({ exists, selectFrom }) =>
        exists(selectFrom('fills').select('fills.id').whereRef('fills.order_id', '=', 'orders.id')),
      ),
  cte: (k) =>
    k
      .with('recent', (w) => w.selectFrom('orders').select(['id', 'status']).where('status', '=', 'new'))
      .selectFrom('recent')
      .innerJoin('fills', 'fills.order_id', 'recent.id')
      .selectAll('recent'),
  'json_agg of a row': (k) =>
    k
      .selectFrom('orders')
      .innerJoin('fills', 'fills.order_id', 'orders.id')
      .select((eb) => ['orders.id', eb.fn.jsonAgg('fills').as('fills')])
      .groupBy('orders.id'),
  insert: (k) => k.insertInto('entries').values({ id: 'e1', amount: 100, created_at: new Date(0) }),
  'insert on conflict returning': (k) =>
    k
      .insertInto('inbox')
      .values({ id: 'm1', handler: 'h' })
      .onConflict((oc) => oc.columns(['id', 'handler']).doNothing())
      .returning(['id']),
  'insert from select': (k) =>
    k
      .insertInto('archive')
      .columns(['id', 'status'])
      .expression(k.selectFrom('orders').select(['id', 'status'])),
  'insert of a JSON value with a kind': (k) =>
    k.insertInto('outbox').values({ id: 'o1', payload: JSON.stringify({ kind: 'TableNode' }), data: { kind: 'x' } }),
  update: (k) =>
    k
      .updateTable('accounts')
      .set({ cash: sql`cash - ${100}`, updated_at: new Date(0) })
      .where('id', '=', 'a1')
      .returning(['cash']),
  'update from': (k) =>
    k
      .updateTable('accounts')
      .from('reservations')
      .set((eb) => ({ reserved: eb.ref('reservations.amount') }))
      .whereRef('reservations.account_id', '=', 'accounts.id'),
  delete: (k) => k.deleteFrom('reservations').where('order_id', '=', 'o1'),
  'delete using': (k) =>
    k.deleteFrom('fills').using('orders').whereRef('fills.order_id', '=', 'orders.id').where('orders.status', '=', 'x'),
  'table already qualified': (k) => k.selectFrom('other.accounts').selectAll().where('other.accounts.id', '=', 'a'),
  'raw sql with a table': (k) => ({
    compile: () => sql`select * from ${sql.table('accounts')} where id = ${'a'}`.compile(k),
  }),
  'create table with a foreign key': (k) =>
    k.schema
      .createTable('holdings')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.references('accounts.id').onDelete('cascade')),
  'create index': (k) => k.schema.createIndex('holdings_account').on('holdings').column('account_id'),
};

describe('schemaPlugin', () => {
  for (const [name, build] of Object.entries(statements)) {
    it(`writes what withSchema writes: ${name}`, () => {
      const expected = build(db.withSchema('bank')).compile();
      const actual = build(db.withPlugin(schemaPlugin('bank'))).compile();
      assert.equal(actual.sql, expected.sql);
      assert.deepEqual(actual.parameters, expected.parameters);
    });
  }

  it('qualifies the tables a statement names, and their columns', () => {
    const { sql: text } = db
      .withPlugin(schemaPlugin('bank'))
      .selectFrom('accounts')
      .select('accounts.id')
      .where('accounts.cash', '>', 0)
      .compile();
    assert.equal(text, 'select "bank"."accounts"."id" from "bank"."accounts" where "bank"."accounts"."cash" > $1');
  });

  it('leaves the statement it was given as it was', () => {
    const node = db.selectFrom('accounts').selectAll().toOperationNode();
    const before = JSON.stringify(node);
    schemaPlugin('bank').transformQuery({ node, queryId: { queryId: 'q' } });
    assert.equal(JSON.stringify(node), before);
  });
});
