import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ChassisNode, createNode, jwtVerifier, MemoryBroker, memoryTransport } from '@chassis/core';
import { Database, dataExtension, EventStore, sql } from '@chassis/data';
import { postgresTarget, waitUntil } from '@chassis/testing';
import { feeRefunded } from '../contracts/fees.ts';
import { beginPlacement, getOrder, orderCreated, sellShares } from '../contracts/orders.ts';
import { startExchangeSimulator } from '../exchange-simulator/simulator.ts';
import { orderEvents } from '../services/orders/order.ts';
import { simplebankServices } from '../src/services.ts';
import { tokenFor } from './one-node.ts';

const target = await postgresTarget();
const secret = 'a-test-secret-of-at-least-32-characters';

/**
 * Orders starts an order's placement at the version `order_created` announced, without reading the order
 * first. With two instances of orders and market, an announced version may no longer hold: every such
 * append must be refused by the event store and the order read again, so each order still ends once,
 * with one placement, its events in order.
 */
describe('SimpleBank orders on two instances: placements at an announced version', { skip: target.skip }, () => {
  let nodes: ChassisNode[] = [];
  let db: Database;
  let exchange: Awaited<ReturnType<typeof startExchangeSimulator>>;
  before(async () => {
    exchange = await startExchangeSimulator({ tickMs: 0 });
    const url = await target.newDatabase();
    const broker = new MemoryBroker();
    const make = (only?: string[]) =>
      createNode({
        identity: jwtVerifier({ secret }),
        services: simplebankServices({ secret, exchangeUrl: exchange.url }).filter(
          (service) => !only || only.includes(service.name),
        ),
        extensions: [dataExtension({ url })],
        transport: memoryTransport({ broker }),
        logLevel: 'silent',
      });
    nodes = [make(), make(['orders', 'market'])];
    // One after the other: the second finds the schemas installed.
    for (const node of nodes) await node.start();
    db = await Database.open(url);
  });
  after(async () => {
    for (const node of nodes) await node.stop();
    await db?.close();
    await exchange?.close();
    await target.cleanup();
  });

  /** Each order's event types, in version order. */
  const eventsOf = async (orderIds: string[]) => {
    const { rows } = await sql<{ stream: string; types: string[]; versions: number[] }>`
      select stream, array_agg(type order by version) as types, array_agg(version::int order by version) as versions
      from orders.chassis_events where stream = any(${orderIds.map((id) => `order-${id}`)}) group by stream`.execute(
      db.kysely,
    );
    return new Map(rows.map((row) => [row.stream.replace(/^order-/, ''), row]));
  };

  it('orders placed on either instance each end once, placed once, their versions unbroken', async () => {
    const alice = await tokenFor('alice', ['customer'], ['101']);
    const orderIds: string[] = [];
    for (let i = 0; i < 24; i++) {
      const node = nodes[i % 2]!;
      orderIds.push((await node.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 1 }, alice)).orderId);
    }
    await waitUntil(
      async () => {
        for (const orderId of orderIds) {
          if ((await nodes[0]!.call(getOrder, { orderId }, alice)).status !== 'completed') return false;
        }
        return true;
      },
      { what: 'every order completed', timeoutMs: 30_000 },
    );
    const events = await eventsOf(orderIds);
    for (const orderId of orderIds) {
      const row = events.get(orderId);
      assert.deepEqual(
        row?.types,
        ['OrderCreated', 'ReservationHeld', 'PlacementStarted', 'OrderPlaced', 'OrderCompleted', 'FeeCharged'],
        orderId,
      );
      assert.deepEqual(row?.versions, [1, 2, 3, 4, 5, 6]);
      const order = await nodes[1]!.call(getOrder, { orderId }, alice);
      assert.equal(order.fee, '1.00');
    }
    assert.equal(exchange.stats().duplicates, 0, 'the exchange was asked once an order');
  });

  it('a placement asked at a version that no longer holds reads the order: not placed again, its own limit', async () => {
    const alice = await tokenFor('alice', ['customer'], ['101']);
    const { orderId } = await nodes[0]!.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 1 }, alice);
    await waitUntil(async () => (await nodes[0]!.call(getOrder, { orderId }, alice)).status === 'completed', {
      what: 'the order completed',
    });
    const market = await tokenFor('market', ['system']);
    const expiresAt = new Date(Date.now() + 60_000).toISOString();
    for (const node of nodes) {
      const answer = await node.call(
        beginPlacement,
        { orderId, announced: { version: 2, expiresAt, limitPrice: '0.01' } },
        market,
      );
      assert.equal(answer.proceed, true, 'already placed: market asks the exchange, which answers as before');
      assert.notEqual(answer.limitPrice, '0.01', 'the limit is the order’s own, read, not the one announced');
    }
    // Announced again with its version (a relay that died before marking it sent): market asks orders,
    // finds the placement made, and the order's events stay as they were.
    const before = (await eventsOf([orderId])).get(orderId)?.types;
    const order = await nodes[0]!.call(getOrder, { orderId }, alice);
    const duplicates = exchange.stats().duplicates;
    await nodes[0]!.emit(orderCreated, {
      orderId,
      accountId: '101',
      side: 'sell',
      symbol: 'GOOG',
      quantity: 1,
      limitPrice: '1.00',
      createdAt: order.history[0]!.at,
      version: 2,
      expiresAt,
    });
    await waitUntil(() => exchange.stats().duplicates > duplicates, { what: 'market to ask the exchange again' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual((await eventsOf([orderId])).get(orderId)?.types, before);
  });

  it('a fee refund after another writer appended it: the delivery finds the refund made, refunded once', async () => {
    const alice = await tokenFor('alice', ['customer'], ['101']);
    for (const node of nodes) {
      const { orderId } = await node.call(sellShares, { accountId: '101', symbol: 'GOOG', quantity: 1 }, alice);
      await waitUntil(async () => (await node.call(getOrder, { orderId }, alice)).fee === '1.00', {
        what: 'the order completed with its fee',
      });
      // Refunded behind the instances' backs, as a delivery that committed and was not acknowledged.
      const store = new EventStore(db, { service: 'orders', schemas: orderEvents, notify: false });
      await store.append(`order-${orderId}`, [{ type: 'FeeRefunded', data: { feeCents: 100 } }], {
        expectedVersion: 6,
      });
      await node.emit(feeRefunded, { orderId, accountId: '101', symbol: 'GOOG', fee: '1.00' });
      await waitUntil(async () => (await node.call(getOrder, { orderId }, alice)).fee === '0.00', {
        what: 'the refund shown',
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const types = (await eventsOf([orderId])).get(orderId)?.types ?? [];
      assert.deepEqual(
        types.filter((type) => type === 'FeeRefunded'),
        ['FeeRefunded'],
        'refunded once: the delivery found the refund made',
      );
    }
  });
});
