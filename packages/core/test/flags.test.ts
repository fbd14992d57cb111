import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  action,
  type ChassisNode,
  createNode,
  defineService,
  EnvironmentFlagProvider,
  handle,
  MemoryBroker,
  memoryTransport,
} from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import { z } from 'zod';

const chargeFee = action('fees.chargeFee', {
  input: z.object({ notional: z.number() }),
  output: z.object({ fee: z.number(), rule: z.string() }),
});

describe('feature flags through OpenFeature', () => {
  const nodes: ChassisNode[] = [];
  after(() => Promise.all(nodes.map((node) => node.stop())));

  async function feesNode(flags: EnvironmentFlagProvider) {
    const fees = defineService({
      name: 'fees',
      actions: [
        handle(chargeFee, async ({ notional }, ctx) => {
          const flat = await ctx.flags.getBooleanValue('flat-fee', false);
          const rate = await ctx.flags.getNumberValue('fee-rate', 0.001);
          return flat ? { fee: 1, rule: 'flat' } : { fee: Math.max(1, notional * rate), rule: `rate ${rate}` };
        }),
      ],
    });
    const node = createNode({
      services: [fees],
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logLevel: 'silent',
      flags,
    });
    nodes.push(node);
    await node.start();
    return node;
  }

  it('reads flags from CHASSIS_FLAG_* variables, typed by their values', async () => {
    const node = await feesNode(
      new EnvironmentFlagProvider({
        CHASSIS_FLAG_FEE_RATE: '0.002',
        CHASSIS_FLAG_FLAT_FEE: 'false',
        CHASSIS_FLAG_BANNER: 'hello',
      }),
    );
    assert.deepEqual(await node.call(chargeFee, { notional: 10_000 }), { fee: 20, rule: 'rate 0.002' });
    assert.equal(await node.flags.getStringValue('banner', ''), 'hello');
    // A flag of the wrong type falls back to the default and says why.
    const details = await node.flags.getBooleanDetails('fee-rate', true);
    assert.equal(details.value, true);
    assert.equal(details.errorCode, 'TYPE_MISMATCH');
  });

  it('a flags file wins over the environment and is re-read when it changes', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'chassis-flags-')), 'flags.json');
    writeFileSync(file, JSON.stringify({ 'flat-fee': false }));
    const node = await feesNode(new EnvironmentFlagProvider({ CHASSIS_FLAG_FLAT_FEE: 'true' }, file));
    assert.equal((await node.call(chargeFee, { notional: 100_000 })).rule, 'rate 0.001');
    writeFileSync(file, JSON.stringify({ 'flat-fee': true }));
    await waitUntil(async () => (await node.call(chargeFee, { notional: 100_000 })).rule === 'flat', {
      what: 'the changed file to take effect',
    });
  });
});
