import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ChassisError, type ChassisNode, callOps, type StoredSpan } from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import { getPositions } from '../contracts/account-transactions.ts';
import { toCents } from '../contracts/common.ts';
import { buyShares, getOrder, sellShares } from '../contracts/orders.ts';
import { type OneNodeBank, opsSecret, startOneNodeBank, tokenFor } from './one-node.ts';

describe('SimpleBank sell-order slice, all in one process', () => {
  let bank: OneNodeBank;
  let node: ChassisNode;
  let alice: { auth: string };
  let bob: { auth: string };
  before(async () => {
    alice = await tokenFor('alice', ['customer'], ['101']);
    bob = await tokenFor('bob', ['customer'], ['102']);
    bank = await startOneNodeBank();
    node = bank.node;
  });
  after(async () => {
    await bank.stop();
  });

  it('a sell order is created, placed by market and filled on the exchange', async () => {
    const { orderId, status } = await node.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 3 }, alice);
    assert.equal(status, 'created');
    // With its fee, which the ledger takes as it settles and orders shows with the completion.
    await waitUntil(
      async () => {
        const order = await node.call(getOrder, { orderId }, alice);
        return order.status === 'completed' && order.fee !== null;
      },
      { what: 'completed, its fee charged' },
    );
    const order = await node.call(getOrder, { orderId }, alice);
    assert.deepEqual(
      order.history.map((h) => h.status),
      ['created', 'placed', 'completed'],
    );
  });

  it('a completed sell moves the shares out and the proceeds less the fee in; a completed buy the other way; nothing stays reserved', async () => {
    const holding = async () => {
      const account = await node.call(getPositions, { accountId: '101' }, alice);
      const goog = account.positions.find((position) => position.symbol === 'GOOG');
      return {
        cash: toCents(account.cash),
        reservedCash: toCents(account.reservedCash),
        shares: goog?.quantity ?? 0,
        reservedShares: goog?.reserved ?? 0,
      };
    };
    const completed = async (orderId: string) => {
      // The fee comes with the completion.
      await waitUntil(
        async () => {
          const order = await node.call(getOrder, { orderId }, alice);
          return order.status === 'completed' && order.fee !== null;
        },
        { what: `order ${orderId} completed, its fee known` },
      );
      const order = await node.call(getOrder, { orderId }, alice);
      return { price: toCents(order.price ?? '0'), fee: toCents(order.fee ?? '0') };
    };

    const start = await holding();
    const sold = await completed(
      (await node.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 2 }, alice)).orderId,
    );
    const afterSell = await holding();
    assert.deepEqual(afterSell, {
      cash: start.cash + 2 * sold.price - sold.fee,
      reservedCash: start.reservedCash,
      shares: start.shares - 2,
      reservedShares: start.reservedShares,
    });

    const bought = await completed(
      (await node.call(buyShares, { accountId: '101', symbol: 'GOOG', quantity: 1 }, alice)).orderId,
    );
    assert.deepEqual(await holding(), {
      cash: afterSell.cash - bought.price - bought.fee,
      reservedCash: start.reservedCash,
      shares: afterSell.shares + 1,
      reservedShares: start.reservedShares,
    });
  });

  it('shares cannot be sold twice: the second order beyond the free quantity is refused', async () => {
    await node.call(sellShares, { accountId: '102', symbol: 'BHP', quantity: 40 }, bob);
    const error = await node.call(sellShares, { accountId: '102', symbol: 'BHP', quantity: 20 }, bob).then(
      () => assert.fail('only 10 BHP remain free'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ChassisError);
    assert.equal(error.code, 'INSUFFICIENT_SHARES');
    assert.deepEqual(error.data, { accountId: '102', symbol: 'BHP', free: 10, requested: 20 });
  });

  it('an unknown order is NOT_FOUND', async () => {
    await assert.rejects(node.call(getOrder, { orderId: '00000000-0000-4000-8000-000000000000' }, alice), {
      code: 'NOT_FOUND',
    });
  });

  it('concurrent orders on one position never reserve more than it holds', async () => {
    // Account 101 holds 1000 BHP, less what earlier tests here sold; each order asks for 60.
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => node.call(sellShares, { accountId: '101', symbol: 'BHP', quantity: 60 }, alice)),
    );
    const accepted = results.filter((r) => r.status === 'fulfilled').length;
    const refused = results.filter(
      (r) => r.status === 'rejected' && (r.reason as ChassisError).code === 'INSUFFICIENT_SHARES',
    ).length;
    assert.equal(accepted + refused, 20, 'each order accepted or refused for too few shares');
    assert.equal(accepted, 16, '16 × 60 = 960 of the 1000 BHP; the 17th would overdraw');
    const last = await node.call(sellShares, { accountId: '101', symbol: 'BHP', quantity: 41 }, alice).then(
      () => assert.fail('only 40 BHP remain free'),
      (e: ChassisError) => e,
    );
    assert.deepEqual(last.data, { accountId: '101', symbol: 'BHP', free: 40, requested: 41 });
  });

  it('the services check the caller themselves: no token 401, another customer’s account or order 403', async () => {
    await assert.rejects(node.call(sellShares, { accountId: '101', symbol: 'BHP', quantity: 1 }), {
      code: 'UNAUTHENTICATED',
    });
    await assert.rejects(node.call(sellShares, { accountId: '101', symbol: 'BHP', quantity: 1 }, bob), {
      code: 'FORBIDDEN',
    });
    const { orderId } = await node.call(sellShares, { accountId: '101', symbol: 'BHP', quantity: 1 }, alice);
    await assert.rejects(node.call(getOrder, { orderId }, bob), { code: 'FORBIDDEN' });
    const admin = await tokenFor('admin', ['admin']);
    assert.equal((await node.call(getOrder, { orderId }, admin)).accountId, '101');
  });

  it('a recorded order leaves its trace in the span store: orders, its transaction, market and its request to the exchange', async () => {
    const traceId = randomBytes(16).toString('hex');
    await node.call(
      sellShares,
      { accountId: '101', symbol: 'GOOG', quantity: 1 },
      { ...alice, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
    );
    const spans = async () =>
      ((await callOps(node.transport, node.id, 'trace', { traceId }, { secret: opsSecret })) as { spans: StoredSpan[] })
        .spans;
    const exchangeRequest = (span: StoredSpan) =>
      span.kind === 'client' && span.attributes['http.request.method'] === 'POST';
    await waitUntil(async () => (await spans()).some(exchangeRequest), { what: "market's request to the exchange" });
    const held = await spans();
    const request = held.find(exchangeRequest)!;
    assert.equal(request.service, 'market');
    assert.equal(request.attributes['http.response.status_code'], 200);
    assert.match(String(request.attributes['url.full']), /\/orders$/);
    const transaction = held.find((span) => span.name === 'db.transaction orders');
    assert.ok(transaction, `spans: ${held.map((span) => span.name).join(', ')}`);
    assert.ok(Number(transaction.attributes['db.statements']) >= 1);
    const services = new Set(held.map((span) => span.service));
    for (const service of ['orders', 'market']) assert.ok(services.has(service), service);
  });
});
