import assert from 'node:assert/strict';
import { afterEach, it } from 'node:test';
import {
  action,
  type ChassisNode,
  createNode,
  defineService,
  event,
  handle,
  MemoryBroker,
  memoryTransport,
  on,
} from '@chassis/core';
import { z } from 'zod';

const ping = action('ledger.ping', { input: z.object({}), output: z.object({}), idempotent: true });
const orderPlaced = event('orders.order_placed', z.object({ orderId: z.string() }));

const ledger = defineService({
  name: 'ledger',
  actions: [handle(ping, () => ({}))],
  events: [on(orderPlaced, () => undefined)],
});

let node: ChassisNode | undefined;
afterEach(() => node?.stop());

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

it('the dead-letter and redelivery counters of every queue the node consumes start at 0, before any message', async () => {
  node = createNode({ services: [ledger], transport: memoryTransport({ broker: new MemoryBroker() }), logLevel: 'silent' });
  await node.start();
  const text = await node.metrics.text();
  assert.equal(sample(text, 'chassis_dead_letters_total{queue="ledger.order_placed"}'), 0);
  assert.equal(sample(text, 'chassis_dead_letters_total{queue="rpc.ledger"}'), 0);
  assert.equal(sample(text, 'chassis_redeliveries_total{subscription="ledger.order_placed"}'), 0);
});

it('chassis_node_ready is 0 before start, 1 while running, 0 once the node has stopped', async () => {
  node = createNode({ services: [ledger], transport: memoryTransport({ broker: new MemoryBroker() }), logLevel: 'silent' });
  assert.equal(sample(await node.metrics.text(), 'chassis_node_ready'), 0);
  await node.start();
  assert.equal(sample(await node.metrics.text(), 'chassis_node_ready'), 1);
  await node.stop();
  assert.equal(sample(await node.metrics.text(), 'chassis_node_ready'), 0);
  node = undefined;
});
