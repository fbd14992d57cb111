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
  node = createNode({
    services: [ledger],
    transport: memoryTransport({ broker: new MemoryBroker() }),
    logLevel: 'silent',
  });
  await node.start();
  const text = await node.metrics.text();
  assert.equal(sample(text, 'chassis_dead_letters_total{queue="ledger.order_placed"}'), 0);
  assert.equal(sample(text, 'chassis_dead_letters_total{queue="rpc.ledger"}'), 0);
  assert.equal(sample(text, 'chassis_redeliveries_total{subscription="ledger.order_placed"}'), 0);
});

it('chassis_node_ready is 0 before start, 1 while running, 0 once the node has stopped', async () => {
  node = createNode({
    services: [ledger],
    transport: memoryTransport({ broker: new MemoryBroker() }),
    logLevel: 'silent',
  });
  assert.equal(sample(await node.metrics.text(), 'chassis_node_ready'), 0);
  await node.start();
  assert.equal(sample(await node.metrics.text(), 'chassis_node_ready'), 1);
  await node.stop();
  assert.equal(sample(await node.metrics.text(), 'chassis_node_ready'), 0);
  node = undefined;
});

it('a target’s breaker, bulkhead and retry counters start at 0 at its first call', async () => {
  const broker = new MemoryBroker();
  const callee = createNode({ services: [ledger], transport: memoryTransport({ broker }), logLevel: 'silent' });
  await callee.start();
  node = createNode({ services: [], transport: memoryTransport({ broker }), logLevel: 'silent' });
  try {
    await node.start();
    const before = await node.metrics.text();
    assert.equal(
      sample(before, 'chassis_policy_rejections_total{target="ledger.ping",code="CIRCUIT_OPEN"}'),
      undefined,
    );
    await node.call(ping, {});
    const text = await node.metrics.text();
    for (const state of ['open', 'half-open', 'closed']) {
      assert.equal(sample(text, `chassis_circuit_breaker_transitions_total{target="ledger.ping",state="${state}"}`), 0);
    }
    assert.equal(sample(text, 'chassis_policy_rejections_total{target="ledger.ping",code="CIRCUIT_OPEN"}'), 0);
    assert.equal(sample(text, 'chassis_policy_rejections_total{target="ledger.ping",code="BULKHEAD_FULL"}'), 0);
    assert.equal(sample(text, 'chassis_retries_total{target="ledger.ping"}'), 0);
    assert.equal(sample(text, 'chassis_retry_budget_exhausted_total{target="ledger.ping"}'), 0);
  } finally {
    await callee.stop();
  }
});
