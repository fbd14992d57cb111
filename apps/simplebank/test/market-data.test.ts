import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChassisNode, createNode, MemoryBroker, memoryTransport } from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import { getPrice } from '../contracts/market-data.ts';
import { marketDataService } from '../services/market-data/service.ts';

/**
 * Market data fetches prices every second while they are asked for, and only now and then while nobody
 * asks: an idle bank does not poll the exchange. The first question after a quiet spell gets a fresh
 * price, not the one kept from before it.
 */
describe('SimpleBank market data: fetched while asked for, fresh after a quiet spell', () => {
  let exchange: Server;
  let node: ChassisNode;
  let fetches = 0;
  let price = '100.00';
  before(async () => {
    exchange = createServer((_request, response) => {
      fetches++;
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ prices: [{ symbol: 'BHP', price, at: new Date().toISOString() }] }));
    });
    await new Promise<void>((resolve) => exchange.listen(0, '127.0.0.1', resolve));
    const { port } = exchange.address() as AddressInfo;
    node = createNode({
      services: [
        marketDataService({
          exchangeUrl: `http://127.0.0.1:${port}`,
          refreshMs: 50,
          idleAfterMs: 400,
          idleRefreshMs: 60_000,
        }),
      ],
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logLevel: 'silent',
    });
    await node.start();
  });
  after(async () => {
    await node?.stop();
    await new Promise((resolve) => exchange?.close(resolve));
  });

  it('polls the exchange while prices are asked for, stops once nobody asks, and refreshes before the next answer', async () => {
    assert.equal((await node.call(getPrice, { symbol: 'BHP' })).price, '100.00');
    // Asked for: fetched on every turn of the schedule.
    const asking = fetches;
    for (let i = 0; i < 10; i++) {
      await node.call(getPrice, { symbol: 'BHP' });
      await sleep(50);
    }
    assert.ok(fetches - asking >= 4, `fetches while asked for: ${fetches - asking}`);

    // Nobody asks: after idleAfterMs, no fetch at all (the next would be a minute away).
    await sleep(700);
    const quiet = fetches;
    await sleep(800);
    assert.equal(fetches - quiet, 0, 'no fetch while nobody asks');

    // The price moved meanwhile: the first question waits for a fetch and gets it.
    price = '123.45';
    assert.equal((await node.call(getPrice, { symbol: 'BHP' })).price, '123.45', 'fetched for that question');
    await waitUntil(() => fetches > quiet + 2, { what: 'the schedule fetching again while asked for' });
  });
});
