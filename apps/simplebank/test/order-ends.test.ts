import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ChassisNode, defineService, on } from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import { orderPlaced, tradeExecuted } from '../contracts/market.ts';
import {
  buyShares,
  getOrder,
  orderChanged,
  orderCompleted,
  orderCreated,
  orderFailed,
  orderRejected,
  sellShares,
} from '../contracts/orders.ts';
import { type OneNodeBank, startOneNodeBank, tokenFor } from './one-node.ts';

/**
 * How an order's saga ends, as its listeners see it: an order the exchange fills at once moves through
 * `placed` to `completed` in one step (one announcement to read models), and its end says who placed it,
 * so that a service following only the orders it placed (place-strategy-orders) skips the others unread.
 */
describe('SimpleBank order ends: one step from placement to end, and who placed the order', () => {
  let bank: OneNodeBank;
  let node: ChassisNode;
  let alice: { auth: string };
  /** Every `order_changed` heard, in order: `[orderId, status, fee]`. */
  const changes: [string, string, string | null][] = [];
  /** Every end heard: orderId → `placedBy`. */
  const ends = new Map<string, string | null | undefined>();
  /** What market announced, as `<event> <orderId>`. */
  const fromMarket: string[] = [];
  const listener = defineService({
    name: 'order-end-listener',
    events: [
      on(orderChanged, (order) => {
        changes.push([order.id, order.status, order.fee]);
      }),
      ...[orderPlaced, tradeExecuted].map((contract) =>
        on(contract, (order: { orderId: string }) => {
          fromMarket.push(`${contract.event} ${order.orderId}`);
        }),
      ),
      ...[orderCompleted, orderFailed, orderRejected].map((contract) =>
        on(contract, (order: { orderId: string; placedBy?: string | null }) => {
          ends.set(order.orderId, order.placedBy);
        }),
      ),
    ],
  });
  before(async () => {
    alice = await tokenFor('alice', ['customer'], ['101']);
    bank = await startOneNodeBank({}, [listener]);
    node = bank.node;
  });
  after(async () => {
    await bank.stop();
  });

  /** The order once it ended with its fee, and the statuses read models were told meanwhile. */
  const ended = async (orderId: string, status: string, fee: (fee: string) => boolean) => {
    await waitUntil(
      async () =>
        ends.has(orderId) &&
        changes.some(
          ([id, announced, announcedFee]) => id === orderId && announced === status && fee(announcedFee ?? ''),
        ),
      { what: `order ${orderId} ${status}, its fee settled, both announced`, timeoutMs: 30_000 },
    );
    return {
      order: await node.call(getOrder, { orderId }, alice),
      announced: changes.filter(([id]) => id === orderId).map(([, announced]) => announced),
    };
  };

  it('a filled order: placed and completed in one announcement, its end says a customer placed it', async () => {
    const { orderId } = await node.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 1 }, alice);
    const { order, announced } = await ended(orderId, 'completed', (fee) => fee === '1.00');
    assert.deepEqual(
      order.history.map((h) => h.status),
      ['created', 'placed', 'completed'],
    );
    // Created, then placed and filled at once with its fee: two announcements, none `placed`.
    assert.deepEqual(announced, ['created', 'completed']);
    assert.ok(!announced.includes('placed'), JSON.stringify(announced));
    assert.equal(ends.get(orderId), null);
  });

  it('an order the exchange takes and then refuses: placed and failed in one announcement', async () => {
    bank.exchange.configure({ rejectSymbols: ['ABC'] });
    try {
      const { orderId } = await node.call(sellShares, { accountId: '101', symbol: 'ABC', quantity: 1 }, alice);
      const { order, announced } = await ended(orderId, 'failed', (fee) => fee === '0.00');
      assert.deepEqual(
        order.history.map((h) => h.status),
        ['created', 'placed', 'failed'],
      );
      assert.ok(!announced.includes('placed'), JSON.stringify(announced));
    } finally {
      bank.exchange.configure({ rejectSymbols: [] });
    }
  });

  it('an order a service placed for a customer: its end names the service', async () => {
    const strategies = await tokenFor('place-strategy-orders', ['system']);
    const { orderId } = await node.call(buyShares, { accountId: '101', symbol: 'BHP', quantity: 1 }, strategies);
    await ended(orderId, 'completed', (fee) => fee === '1.00');
    assert.equal(ends.get(orderId), 'place-strategy-orders');
  });

  it('a new order announced again (a relay that died before marking it sent) is neither placed nor announced again', async () => {
    const { orderId } = await node.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 1 }, alice);
    const { order } = await ended(orderId, 'completed', (fee) => fee === '1.00');
    const placedOnce = [`${orderPlaced.event} ${orderId}`, `${tradeExecuted.event} ${orderId}`];
    assert.deepEqual(fromMarket.filter((line) => line.endsWith(orderId)).sort(), placedOnce);
    const duplicates = bank.exchange.stats().duplicates;
    await node.emit(orderCreated, {
      orderId,
      accountId: '101',
      side: 'sell',
      symbol: 'GOOG',
      quantity: 1,
      limitPrice: '1.00',
      createdAt: order.history[0]!.at,
    });
    // Market asks the exchange again (it answers as the first time, trading nothing) and finds the answer recorded.
    await waitUntil(async () => bank.exchange.stats().duplicates > duplicates, { what: 'market to ask again' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(fromMarket.filter((line) => line.endsWith(orderId)).sort(), placedOnce);
  });
});
