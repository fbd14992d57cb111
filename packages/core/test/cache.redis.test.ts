import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import {
  action,
  type ChassisNode,
  createNode,
  defineService,
  handle,
  MemoryBroker,
  memoryTransport,
  RedisCacheStore,
} from '@chassis/core';
import { servers, skipUnlessUp } from '@chassis/testing';
import { z } from 'zod';

describe('response cache shared through Redis', { skip: await skipUnlessUp('redis') }, () => {
  const nodes: ChassisNode[] = [];
  const stores: RedisCacheStore[] = [];
  after(async () => {
    await Promise.allSettled(nodes.map((node) => node.stop()));
    await Promise.allSettled(stores.map((store) => store.close()));
  });

  it('two callers share what either learned, until the TTL passes; non-idempotent actions are never cached', async () => {
    const suffix = randomBytes(4).toString('hex');
    const getPrice = action(`market-data-${suffix}.getPrice`, {
      input: z.object({ symbol: z.string() }),
      output: z.object({ price: z.string() }),
      idempotent: true,
      policies: { cache: { ttlMs: 1500 } },
    });
    const placeOrder = action(`market-data-${suffix}.placeOrder`, {
      input: z.object({ symbol: z.string() }),
      output: z.object({ price: z.string() }),
      policies: { cache: { ttlMs: 1500 } },
    });
    let calls = 0;
    const broker = new MemoryBroker();
    const start = async (services: ReturnType<typeof defineService>[]) => {
      const store = await RedisCacheStore.connect(servers.redis.url);
      stores.push(store);
      const node = createNode({
        services,
        transport: memoryTransport({ broker }),
        logLevel: 'silent',
        policies: { cacheStore: store },
      });
      nodes.push(node);
      await node.start();
      return node;
    };
    const answer = () => ({ price: `9${++calls}.00` });
    await start([
      defineService({ name: getPrice.service, actions: [handle(getPrice, answer), handle(placeOrder, answer)] }),
    ]);
    const holdingsA = await start([]);
    const holdingsB = await start([]);
    assert.equal((await holdingsA.call(getPrice, { symbol: 'BHP' })).price, '91.00');
    assert.equal((await holdingsB.call(getPrice, { symbol: 'BHP' })).price, '91.00', 'B reads what A cached');
    assert.equal(calls, 1);
    await new Promise((r) => setTimeout(r, 1550)); // a TTL of 1.5 s: B's read lands within it under load
    assert.equal((await holdingsB.call(getPrice, { symbol: 'BHP' })).price, '92.00', 'expired after the TTL');
    await holdingsA.call(placeOrder, { symbol: 'BHP' });
    await holdingsA.call(placeOrder, { symbol: 'BHP' });
    assert.equal(calls, 4, 'a non-idempotent action is called every time');
  });
});
