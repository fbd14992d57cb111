import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  ChassisError,
  type ChassisNode,
  createNode,
  type InputOf,
  jwtVerifier,
  MemoryBroker,
  memoryTransport,
  signToken,
} from '@chassis/core';
import { Database, dataExtension } from '@chassis/data';
import { postgresTarget, waitUntil } from '@chassis/testing';
import type { Kysely } from 'kysely';
import { requestReservation } from '../contracts/account-transactions.ts';
import { orderFailed } from '../contracts/orders.ts';
import { accountTransactionsService } from '../services/account-transactions/service.ts';

interface LedgerRows {
  accounts: { id: string; name: string; owner: string; cash_cents: number; cash_reserved_cents: number };
  positions: { account_id: string; symbol: string; quantity: number; reserved: number };
  reservations: { order_id: string; account_id: string; quantity: number; cash_cents: number; status: string };
}

const target = await postgresTarget();

/**
 * The ledger's row locks are what keep two orders from spending the same shares or cash: PGlite runs
 * one transaction at a time and can never show a race, so this suite runs on the real PostgreSQL with
 * a pool of ten connections and forty reservations at once against an account that has room for only
 * some. Each round gets an account of its own, made directly in the ledger's tables.
 *
 * Without the locks the tables' CHECK constraints (reserved <= quantity, cash reserved <= cash) still
 * stop the last update, so the race shows as refusals that are INTERNAL (a 500) instead of the typed
 * 409: the suite asserts the refusal codes as well as the sums. The account's lock alone serialises
 * both cases; the position's lock alone only the sells.
 */
describe('SimpleBank ledger reservations under real concurrency (PostgreSQL, 10 connections)', {
  skip: target.skip,
}, () => {
  const secret = 'a-test-secret-of-at-least-32-characters';
  const rounds = 5;
  const concurrent = 40;
  let db: Database;
  let ledger: Kysely<LedgerRows>;
  let node: ChassisNode;
  let orders: { auth: string };
  before(async () => {
    db = await Database.open(await target.newDatabase(), { poolSize: 10 });
    node = createNode({
      identity: jwtVerifier({ secret }),
      services: [accountTransactionsService()],
      extensions: [dataExtension({ database: db })],
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logLevel: 'silent',
    });
    await node.start();
    ledger = db.schema<LedgerRows>('account-transactions');
    // The orders service reserves under the customer's token; the bank's own role is simpler here.
    orders = { auth: await signToken(secret, { sub: 'orders', roles: ['system'] }) };
  });
  after(async () => {
    await node?.stop();
    await db?.close();
    await target.cleanup();
  });

  let accounts = 0;
  /** A new account (ids are digits; the database is this suite's own) with cash and BHP shares. */
  async function newAccount(cashCents: number, shares: number): Promise<string> {
    const id = String(9000 + ++accounts);
    await ledger
      .insertInto('accounts')
      .values({ id, name: id, owner: id, cash_cents: cashCents, cash_reserved_cents: 0 })
      .execute();
    await ledger
      .insertInto('positions')
      .values({ account_id: id, symbol: 'BHP', quantity: shares, reserved: 0 })
      .execute();
    return id;
  }

  async function state(accountId: string) {
    const account = await ledger
      .selectFrom('accounts')
      .select(['cash_cents', 'cash_reserved_cents'])
      .where('id', '=', accountId)
      .executeTakeFirstOrThrow();
    const position = await ledger
      .selectFrom('positions')
      .select(['quantity', 'reserved'])
      .where('account_id', '=', accountId)
      .executeTakeFirstOrThrow();
    const held = await ledger
      .selectFrom('reservations')
      .select(['quantity', 'cash_cents'])
      .where('account_id', '=', accountId)
      .where('status', '=', 'held')
      .execute();
    return {
      cash: Number(account.cash_cents),
      cashReserved: Number(account.cash_reserved_cents),
      shares: Number(position.quantity),
      sharesReserved: Number(position.reserved),
      reservations: held.length,
      heldShares: held.reduce((sum, r) => sum + Number(r.quantity), 0),
      heldCash: held.reduce((sum, r) => sum + Number(r.cash_cents), 0),
    };
  }

  /**
   * Fires the reservations at once; how many were accepted, and the codes of the refusals. They queue on
   * the account's lock: a generous timeout, so a loaded machine shows no TIMEOUT among them.
   */
  async function race(inputs: InputOf<typeof requestReservation>[]) {
    const results = await Promise.allSettled(
      inputs.map((input) => node.call(requestReservation, input, { ...orders, timeoutMs: 120_000 })),
    );
    const refusals = results.flatMap((r) =>
      r.status === 'rejected' ? [r.reason instanceof ChassisError ? r.reason.code : String(r.reason)] : [],
    );
    return { accepted: results.length - refusals.length, refusals };
  }

  it(`concurrent sell reservations never reserve more shares than the position holds (${rounds} rounds × ${concurrent})`, async () => {
    for (let round = 1; round <= rounds; round++) {
      // 100 shares, 7 per order: 14 orders fit (98), the other 26 are refused for too few shares.
      const accountId = await newAccount(1_000_000, 100);
      const { accepted, refusals } = await race(
        Array.from({ length: concurrent }, () => ({
          orderId: randomUUID(),
          accountId,
          side: 'sell' as const,
          symbol: 'BHP',
          quantity: 7,
          cash: '1.00',
        })),
      );
      assert.deepEqual(
        refusals.filter((code) => code !== 'INSUFFICIENT_SHARES'),
        [],
        `round ${round}: every refusal is INSUFFICIENT_SHARES`,
      );
      const after = await state(accountId);
      assert.ok(after.sharesReserved <= after.shares, `round ${round}: oversold, ${after.sharesReserved} of 100`);
      assert.equal(accepted, 14, `round ${round}: as many orders as fit are accepted`);
      assert.equal(after.sharesReserved, 98, `round ${round}: the position's reserved shares`);
      assert.equal(after.heldShares, 98, `round ${round}: the reservations hold what the position says`);
      assert.equal(after.cashReserved, 14 * 100, `round ${round}: one fee held per accepted order`);
      assert.equal(after.heldCash, after.cashReserved);
    }
  });

  it(`concurrent buy reservations never reserve more cash than the account has free (${rounds} rounds × ${concurrent})`, async () => {
    for (let round = 1; round <= rounds; round++) {
      // 100.00 cash, 7.00 per order: 14 orders fit (98.00), the other 26 are refused for too little cash.
      const accountId = await newAccount(10_000, 0);
      const { accepted, refusals } = await race(
        Array.from({ length: concurrent }, () => ({
          orderId: randomUUID(),
          accountId,
          side: 'buy' as const,
          symbol: 'BHP',
          quantity: 1,
          cash: '7.00',
        })),
      );
      assert.deepEqual(
        refusals.filter((code) => code !== 'INSUFFICIENT_CASH'),
        [],
        `round ${round}: every refusal is INSUFFICIENT_CASH`,
      );
      const after = await state(accountId);
      assert.ok(after.cashReserved <= after.cash, `round ${round}: overspent, ${after.cashReserved} of 10000 cents`);
      assert.equal(accepted, 14, `round ${round}: as many orders as fit are accepted`);
      assert.equal(after.cashReserved, 9_800, `round ${round}: the account's reserved cash`);
      assert.equal(after.heldCash, 9_800, `round ${round}: the reservations hold what the account says`);
    }
  });

  it('a reservation of exactly the free shares, or exactly the free cash, succeeds; one more is refused', async () => {
    const accountId = await newAccount(5_000, 10);
    const sell = await node.call(
      requestReservation,
      { orderId: randomUUID(), accountId, side: 'sell', symbol: 'BHP', quantity: 10, cash: '1.00' },
      orders,
    );
    assert.equal(sell.free, 0, 'all 10 shares reserved');
    await assert.rejects(
      node.call(
        requestReservation,
        { orderId: randomUUID(), accountId, side: 'sell', symbol: 'BHP', quantity: 1, cash: '0.00' },
        orders,
      ),
      { code: 'INSUFFICIENT_SHARES', data: { accountId, symbol: 'BHP', free: 0, requested: 1 } },
    );
    // 50.00 less the sell's 1.00 fee: 49.00 free.
    await node.call(
      requestReservation,
      { orderId: randomUUID(), accountId, side: 'buy', symbol: 'BHP', quantity: 1, cash: '49.00' },
      orders,
    );
    await assert.rejects(
      node.call(
        requestReservation,
        { orderId: randomUUID(), accountId, side: 'buy', symbol: 'BHP', quantity: 1, cash: '0.01' },
        orders,
      ),
      { code: 'INSUFFICIENT_CASH', data: { accountId, free: '0.00', requested: '0.01' } },
    );
    const after = await state(accountId);
    assert.deepEqual([after.sharesReserved, after.cashReserved], [10, 5_000]);
  });

  it('reserving again for the same order changes nothing, also when the retries arrive at once', async () => {
    const accountId = await newAccount(10_000, 100);
    const orderId = randomUUID();
    const input = { orderId, accountId, side: 'sell' as const, symbol: 'BHP', quantity: 30, cash: '2.00' };
    const first = await node.call(requestReservation, input, orders);
    assert.deepEqual(first, { reservationId: `res-${orderId}`, free: 70 });
    const again = await node.call(requestReservation, input, orders);
    assert.deepEqual(again, { reservationId: `res-${orderId}`, free: 70 }, 'the same reservation, nothing more held');

    // A retry racing its own first attempt: one reservation, held once.
    const racing = { ...input, orderId: randomUUID() };
    const { accepted, refusals } = await race(Array.from({ length: 10 }, () => racing));
    assert.deepEqual(refusals, [], 'every attempt answers with the one reservation');
    assert.equal(accepted, 10);
    const after = await state(accountId);
    assert.deepEqual(
      [after.reservations, after.sharesReserved, after.heldShares, after.cashReserved],
      [2, 60, 60, 400],
      'two orders, 30 shares and 2.00 each',
    );
  });

  it('an order that failed before its reservation came holds nothing: the late reservation is refused, and racing ends leave nothing held', async () => {
    const accountId = await newAccount(100_000, 100);
    const sell = (orderId: string) => ({
      orderId,
      accountId,
      side: 'sell' as const,
      symbol: 'BHP',
      quantity: 3,
      cash: '1.00',
    });
    const released = async (ids: string[]) => {
      const rows = await ledger
        .selectFrom('reservations')
        .select('order_id')
        .where('order_id', 'in', ids)
        .where('status', '=', 'released')
        .execute();
      return rows.length === ids.length;
    };

    // The order failed (the stale sweep, say) while its reservation request was still on its way.
    const late = randomUUID();
    await node.emit(orderFailed, { ...sell(late), reason: 'placing was interrupted' });
    await waitUntil(() => released([late]), { what: 'the failed order marked released' });
    await assert.rejects(node.call(requestReservation, sell(late), orders), {
      code: 'ORDER_ENDED',
      data: { orderId: late },
    });

    // Each order's end and its reservation at once: whichever comes first, nothing stays held.
    const racing = Array.from({ length: 20 }, () => randomUUID());
    const results = await Promise.allSettled(
      racing.flatMap((orderId) => [
        node.emit(orderFailed, { ...sell(orderId), reason: 'placing was interrupted' }),
        node.call(requestReservation, sell(orderId), { ...orders, timeoutMs: 60_000 }),
      ]),
    );
    const refusals = results.flatMap((r) =>
      r.status === 'rejected' ? [r.reason instanceof ChassisError ? r.reason.code : String(r.reason)] : [],
    );
    assert.deepEqual(
      refusals.filter((code) => code !== 'ORDER_ENDED'),
      [],
      'a reservation that came second is refused as ORDER_ENDED',
    );
    await waitUntil(() => released(racing), { what: 'every racing order released' });
    const after = await state(accountId);
    assert.deepEqual(
      [after.reservations, after.sharesReserved, after.cashReserved],
      [0, 0, 0],
      'no reservation held, no shares or cash reserved',
    );
  });
});
