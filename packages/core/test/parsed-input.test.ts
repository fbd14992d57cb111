import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  action,
  type ChassisNode,
  createNode,
  defineService,
  handle,
  MemoryBroker,
  memoryTransport,
  parseInput,
} from '@chassis/core';
import { z } from 'zod';

/*
 * An edge that checks a request against the contract before calling (the gateway, for its 400) passes
 * its parse with the call: a handler of the very same schema on this node takes it as parsed, without a
 * second parse. Counted through a transform that records every run of the input schema.
 */
let parses = 0;
const Cents = z
  .string()
  .regex(/^\d+$/)
  .transform((text) => {
    parses++;
    return Number(text);
  });
const quote = action('prices.quote', {
  input: z.object({ cents: Cents }),
  output: z.object({ dollars: z.number() }),
  idempotent: true,
});
/** The same action's name with a schema of its own: a parse by `quote`'s schema proves nothing for it. */
const quoteAgain = action('prices.quote', {
  input: z.object({ cents: Cents }),
  output: z.object({ dollars: z.number() }),
  idempotent: true,
});

describe('parseInput: a call passing the input as its contract parsed it', () => {
  let node: ChassisNode;
  const seen: unknown[] = [];
  before(async () => {
    node = createNode({
      services: [
        defineService({
          name: 'prices',
          actions: [
            handle(quote, (input) => {
              seen.push(input);
              return { dollars: input.cents / 100 };
            }),
          ],
        }),
      ],
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logLevel: 'silent',
    });
    await node.start();
  });
  after(async () => {
    await node.stop();
  });

  it('parses as the contract does: zod’s result shape, its failure as it is', () => {
    const good = parseInput(quote, { cents: '1250' });
    assert.equal(good.success, true);
    assert.deepEqual(good.success && good.data, { cents: 1250 });
    const bad = parseInput(quote, { cents: 'twelve' });
    assert.equal(bad.success, false);
    assert.ok(!bad.success && bad.error.issues.some((issue) => issue.path.join('.') === 'cents'));
  });

  it('a local handler of the same schema takes the parsed value: the schema runs once a call', async () => {
    const raw = { cents: '1250' };
    parses = 0;
    const parsedInput = parseInput(quote, raw);
    assert.ok(parsedInput.success);
    assert.deepEqual(await node.call(quote, raw, { parsedInput }), { dollars: 12.5 });
    assert.deepEqual(node.callNow(quote, raw, { parsedInput }), { dollars: 12.5 });
    assert.equal(parses, 1);
    assert.equal(seen.at(-1), parsedInput.data);
  });

  it('another schema, a look-alike object or no parse at all: the handler parses the input itself', async () => {
    const raw = { cents: '99' };
    const byOtherSchema = parseInput(quoteAgain, raw);
    assert.ok(byOtherSchema.success);
    parses = 0;
    assert.deepEqual(await node.call(quote, raw, { parsedInput: byOtherSchema as never }), { dollars: 0.99 });
    assert.equal(parses, 1);
    assert.notEqual(seen.at(-1), byOtherSchema.data);

    // A value shaped like a parse, not made by parseInput: its data is never taken as the input.
    const lookAlike = { success: true, schema: quote.input, data: { cents: 5 } };
    parses = 0;
    assert.deepEqual(await node.call(quote, raw, { parsedInput: lookAlike as never }), { dollars: 0.99 });
    assert.equal(parses, 1);

    parses = 0;
    assert.deepEqual(await node.call(quote, raw), { dollars: 0.99 });
    assert.equal(parses, 1);
  });

  it('the input a parse came from is what a call that leaves the node carries: the receiver parses it', async () => {
    const broker = new MemoryBroker();
    const server = createNode({
      services: [
        defineService({ name: 'prices', actions: [handle(quote, (input) => ({ dollars: input.cents / 100 }))] }),
      ],
      transport: memoryTransport({ broker }),
      logLevel: 'silent',
    });
    const client = createNode({ services: [], transport: memoryTransport({ broker }), logLevel: 'silent' });
    await server.start();
    await client.start();
    try {
      const raw = { cents: '250' };
      const parsedInput = parseInput(quote, raw);
      assert.ok(parsedInput.success);
      parses = 0;
      assert.deepEqual(await client.call(quote, raw, { parsedInput }), { dollars: 2.5 });
      assert.equal(parses, 1);
    } finally {
      await client.stop();
      await server.stop();
    }
  });
});
