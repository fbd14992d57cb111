import assert from 'node:assert/strict';
import { type Database, sql } from '@chassis/data';
import { waitUntil } from '@chassis/testing';

const TERMINAL = ['completed', 'rejected', 'failed', 'canceled'];

/**
 * Waits until every order is terminal and the read model has caught up with every order, then checks
 * the invariants of specs/simplebank.md in the services' own tables.
 */
export async function settleAndCheckInvariants(db: Database, { timeoutMs = 60_000 } = {}): Promise<void> {
  const k = db.kysely;
  let last = '';
  await waitUntil(
    async () => {
      const { rows } = await sql<{ streams: number; summaries: number; open: number; held: number; feeless: number }>`
        select
          (select count(*) from orders.chassis_streams)::int as streams,
          (select count(*) from "customer-orders".order_summaries)::int as summaries,
          (select count(*) from "customer-orders".order_summaries where status not in (${sql.join(TERMINAL)}))::int as open,
          (select count(*) from "account-transactions".reservations r
            join "customer-orders".order_summaries s on s.order_id = r.order_id
            where r.status = 'held')::int as held,
          -- The ledger takes the fee as it settles the trade; the read model may hear of the completion first.
          (select count(*) from "customer-orders".order_summaries s where s.status = 'completed' and not exists (
            select 1 from "account-transactions".entries e
            where e.order_id = s.order_id and e.kind = 'fee' and e.account = 'fees'))::int as feeless`.execute(k);
      const row = rows[0]!;
      last = JSON.stringify(row);
      return row.streams === row.summaries && row.open === 0 && row.held === 0 && row.feeless === 0;
    },
    {
      timeoutMs,
      intervalMs: 200,
      what: 'every order terminal, its reservation settled, its fee posted and the read model caught up',
    },
  ).catch(async (error: Error) => {
    const unsettled = await describeUnsettled(db).catch((cause: Error) => `(not read: ${cause.message})`);
    throw new Error(
      `${error.message} (order streams, read-model rows, open orders, held reservations, completed orders without a fee: ${last})\nthe orders not settled: ${unsettled}`,
    );
  });

  // Double entry: per asset, the entries of all accounts and books sum to zero.
  const unbalanced = await sql<{ asset: string; sum: string }>`
    select asset, sum(amount)::text as sum from "account-transactions".entries group by asset having sum(amount) <> 0`.execute(
    k,
  );
  assert.deepEqual(unbalanced.rows, [], 'every asset’s entries sum to zero');

  // Balances are what the entries say; nothing reserved is left over; free and cash never negative.
  const cash = await sql<{ id: string; cash: string; entries: string; reserved: string; held: string }>`
    select a.id, a.cash_cents::text as cash, a.cash_reserved_cents::text as reserved,
      coalesce((select sum(amount) from "account-transactions".entries e where e.account = a.id and e.asset = 'CASH'), 0)::text as entries,
      coalesce((select sum(cash_cents) from "account-transactions".reservations r where r.account_id = a.id and r.status = 'held'), 0)::text as held
    from "account-transactions".accounts a`.execute(k);
  for (const row of cash.rows) {
    assert.equal(row.cash, row.entries, `account ${row.id}: cash equals its entries`);
    assert.equal(row.reserved, row.held, `account ${row.id}: reserved cash equals what held reservations hold`);
    assert.ok(Number(row.cash) >= Number(row.reserved), `account ${row.id}: free cash is not negative`);
  }
  const positions = await sql<{
    account_id: string;
    symbol: string;
    quantity: string;
    entries: string;
    reserved: string;
    held: string;
  }>`
    select p.account_id, p.symbol, p.quantity::text as quantity, p.reserved::text as reserved,
      coalesce((select sum(amount) from "account-transactions".entries e where e.account = p.account_id and e.asset = p.symbol), 0)::text as entries,
      coalesce((select sum(quantity) from "account-transactions".reservations r
        where r.account_id = p.account_id and r.symbol = p.symbol and r.status = 'held'), 0)::text as held
    from "account-transactions".positions p`.execute(k);
  for (const row of positions.rows) {
    const where = `account ${row.account_id} ${row.symbol}`;
    assert.equal(row.quantity, row.entries, `${where}: quantity equals its entries`);
    assert.equal(row.reserved, row.held, `${where}: reserved equals what held reservations hold`);
    assert.ok(Number(row.quantity) >= Number(row.reserved), `${where}: free is not negative`);
  }

  // Exactly one fee for every completed order; none, or refunded, for every other.
  const fees = await sql<{ order_id: string; status: string; charges: number; refunds: number }>`
    select s.order_id, s.status,
      (select count(*) from "account-transactions".entries e where e.order_id = s.order_id and e.kind = 'fee' and e.account = 'fees')::int as charges,
      (select count(*) from "account-transactions".entries e where e.order_id = s.order_id and e.kind = 'fee_refund' and e.account = 'fees')::int as refunds
    from "customer-orders".order_summaries s`.execute(k);
  for (const row of fees.rows) {
    if (row.status === 'completed') {
      assert.deepEqual([row.charges, row.refunds], [1, 0], `completed order ${row.order_id}: one fee, kept`);
    } else {
      assert.equal(row.charges, row.refunds, `${row.status} order ${row.order_id}: no fee, or a refunded one`);
      assert.ok(row.charges <= 1, `${row.status} order ${row.order_id}: charged at most once`);
    }
  }
}

/**
 * What each order left unsettled went through, from every service's tables: its reservation, its events in
 * the orders store, the events about it in the orders' and market's outboxes (sent or not), and the ledger's
 * inbox rows for those — where the trail stops says which hop lost it.
 */
async function describeUnsettled(db: Database): Promise<string> {
  const { rows } = await sql<{ order_id: string }>`
    select r.order_id from "account-transactions".reservations r
      join "customer-orders".order_summaries s on s.order_id = r.order_id where r.status = 'held'
    union
    select s.order_id from "customer-orders".order_summaries s where s.status = 'completed' and not exists (
      select 1 from "account-transactions".entries e where e.order_id = s.order_id and e.kind = 'fee' and e.account = 'fees')
    limit 5`.execute(db.kysely);
  const trails = [];
  for (const { order_id: orderId } of rows) {
    const like = `%${orderId}%`;
    const reservation = await sql`
      select status, side, quantity, cash_cents from "account-transactions".reservations where order_id = ${orderId}`.execute(
      db.kysely,
    );
    const summary = await sql`
      select status, version from "customer-orders".order_summaries where order_id = ${orderId}`.execute(db.kysely);
    const events = await sql`
      select e.type, e.version from orders.chassis_events e where e.stream = ${`order-${orderId}`} order by e.version`
      .execute(db.kysely)
      .catch((error: Error) => ({ rows: [`(not read: ${error.message})`] }));
    const outboxes = [];
    for (const service of ['orders', 'market']) {
      const sent = await sql<{ id: string; event: string; message_id: string; sent: boolean }>`
        select id::text, event, headers->>'id' as message_id, sent_at is not null as sent
        from ${sql.id(service, 'chassis_outbox')} where convert_from(body, 'UTF8') like ${like} order by id`.execute(
        db.kysely,
      );
      outboxes.push(...sent.rows.map((row) => ({ service, ...row })));
    }
    const ids = outboxes.map((row) => row.message_id);
    const inbox =
      ids.length === 0
        ? { rows: [] }
        : await sql`
          select subscription, message_id from "account-transactions".chassis_inbox where message_id in (${sql.join(ids)})`.execute(
            db.kysely,
          );
    trails.push({
      orderId,
      reservation: reservation.rows,
      summary: summary.rows,
      events: events.rows,
      outboxes,
      ledgerInbox: inbox.rows,
    });
  }
  return JSON.stringify(trails);
}
