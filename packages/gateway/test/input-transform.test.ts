import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { action, createNode, defineService, handle, memoryTransport } from '@chassis/core';
import { createGateway, type Gateway, route } from '@chassis/gateway';
import { z } from 'zod';

/*
 * An action whose input contract transforms what it reads (a price given in cents as text, read as a
 * number): the gateway checks the request against the contract for its 400, but the action parses the
 * input where it runs. Were the gateway to forward its own parsed value, the action would parse a number
 * where its contract reads text, and refuse a request the gateway had accepted.
 */
/** Runs of the contract's transform: the gateway's check and a local handler share one parse. */
let transforms = 0;
const quote = action('prices.quote', {
  input: z.object({
    symbol: z.string().min(1),
    cents: z
      .string()
      .regex(/^\d+$/)
      .transform((text) => {
        transforms++;
        return Number(text);
      }),
  }),
  output: z.object({ symbol: z.string(), dollars: z.number() }),
  idempotent: true,
});

describe('gateway: an input contract with a transform', () => {
  let gateway: Gateway;
  let node: ReturnType<typeof createNode>;
  const seen: unknown[] = [];
  before(async () => {
    node = createNode({
      services: [
        defineService({
          name: 'prices',
          actions: [
            handle(quote, (input) => {
              seen.push(input);
              return { symbol: input.symbol, dollars: input.cents / 100 };
            }),
          ],
        }),
      ],
      transport: memoryTransport(),
      logLevel: 'silent',
    });
    await node.start();
    gateway = await createGateway({
      node,
      rateLimit: false,
      routes: [
        route.get('/quotes/:symbol', quote, { auth: 'public' }),
        route.post('/quotes', quote, {
          auth: 'public',
          location: (output, input) => `/quotes/${input.cents}/${output.symbol}`,
        }),
      ],
    });
    await gateway.app.ready();
  });
  after(async () => {
    await gateway.close();
    await node.stop();
  });

  it('is applied once, where the action runs, on the plain path and on the full one', async () => {
    const plain = await gateway.app.inject({ method: 'GET', url: '/quotes/BHP?cents=1250' });
    assert.equal(plain.statusCode, 200, plain.body);
    assert.deepEqual(plain.json(), { symbol: 'BHP', dollars: 12.5 });

    // A Location rule sends the request the full way; it sees the parsed input (cents as a number).
    const full = await gateway.app.inject({ method: 'POST', url: '/quotes', payload: { symbol: 'RIO', cents: '99' } });
    assert.equal(full.statusCode, 200, full.body);
    assert.deepEqual(full.json(), { symbol: 'RIO', dollars: 0.99 });
    assert.equal(full.headers.location, '/quotes/99/RIO');

    assert.deepEqual(seen, [
      { symbol: 'BHP', cents: 1250 },
      { symbol: 'RIO', cents: 99 },
    ]);
  });

  it('runs once a plain request when the action is served on the gateway’s own node: its parse is passed on', async () => {
    transforms = 0;
    const plain = await gateway.app.inject({ method: 'GET', url: '/quotes/BHP?cents=700' });
    assert.equal(plain.statusCode, 200, plain.body);
    assert.equal(transforms, 1);
    // The full way (a Location rule) keeps its own parse for the rule: the action parses again.
    const full = await gateway.app.inject({ method: 'POST', url: '/quotes', payload: { symbol: 'RIO', cents: '5' } });
    assert.equal(full.statusCode, 200, full.body);
    assert.equal(transforms, 3);
    assert.deepEqual(seen.slice(-2), [
      { symbol: 'BHP', cents: 700 },
      { symbol: 'RIO', cents: 5 },
    ]);
  });

  it('a request the contract refuses is still a 400 at the edge naming the field; the action never runs', async () => {
    const before = seen.length;
    const bad = await gateway.app.inject({ method: 'GET', url: '/quotes/BHP?cents=twelve' });
    assert.equal(bad.statusCode, 400, bad.body);
    assert.match(bad.body, /cents/);
    assert.equal(seen.length, before);
  });
});
