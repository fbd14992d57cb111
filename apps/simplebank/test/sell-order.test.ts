import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChassisError, type ChassisNode, createNode, MemoryBroker, memoryTransport } from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import { getOrder, sellShares } from '../contracts/orders.ts';
import { simplebankServices } from '../src/services.ts';

describe('SimpleBank sell-order slice, all in one process', () => {
  let node: ChassisNode;
  before(async () => {
    node = createNode({
      services: simplebankServices({ secret: 'a-test-secret-of-at-least-32-characters' }),
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logLevel: 'silent',
    });
    await node.start();
  });
  after(() => node.stop());

  it('a sell order is created, then placed by market', async () => {
    const { orderId, status } = await node.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 3 });
    assert.equal(status, 'created');
    await waitUntil(async () => (await node.call(getOrder, { orderId })).status === 'placed', { what: 'placed' });
    const order = await node.call(getOrder, { orderId });
    assert.deepEqual(
      order.history.map((h) => h.status),
      ['created', 'placed'],
    );
  });

  it('shares cannot be sold twice: the second order beyond the free quantity is refused', async () => {
    await node.call(sellShares, { accountId: '102', symbol: 'BHP', quantity: 40 });
    const error = await node.call(sellShares, { accountId: '102', symbol: 'BHP', quantity: 20 }).then(
      () => assert.fail('only 10 BHP remain free'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ChassisError);
    assert.equal(error.code, 'INSUFFICIENT_SHARES');
    assert.deepEqual(error.data, { accountId: '102', symbol: 'BHP', free: 10, requested: 20 });
  });

  it('an unknown order is NOT_FOUND', async () => {
    await assert.rejects(node.call(getOrder, { orderId: '00000000-0000-4000-8000-000000000000' }), {
      code: 'NOT_FOUND',
    });
  });
});
