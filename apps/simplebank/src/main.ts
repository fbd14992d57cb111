import { setTimeout as sleep } from 'node:timers/promises';
import { type ChassisNode, isChassisError, runNode } from '@chassis/core';
import { getOrder, sellShares } from '../contracts/orders.ts';
import { simplebankServices } from './services.ts';

/**
 * `npm start`: SimpleBank's sell-order slice on the chassis. With no configuration every service runs
 * in this one process on the memory transport; `CHASSIS_TRANSPORT=nats://127.0.0.1:4222 SERVICES=orders`
 * and friends spread the same services over processes. The walk-through below places a few orders and
 * prints what happened; `--serve` keeps the node running afterwards until Ctrl-C.
 */

const node = await runNode({
  services: simplebankServices(),
  ...(process.env.LOG_LEVEL ? {} : { logLevel: 'warn' as const }),
});
const say = (line: string) => console.log(line);

async function attempt(label: string, run: () => Promise<string>): Promise<void> {
  try {
    say(`  ${label} → ${await run()}`);
  } catch (error) {
    if (!isChassisError(error)) throw error;
    const fields = (error.data as { fields?: { path: string; message: string }[] } | undefined)?.fields;
    say(`  ${label} → ${error.status} ${error.code}: ${error.message.split(':')[0]}`);
    for (const field of fields ?? []) say(`      ${field.path}: ${field.message}`);
  }
}

async function walkThrough(node: ChassisNode): Promise<void> {
  say(`SimpleBank sell-order slice on the ${node.transport.kind} transport (node ${node.id})`);
  say(`  services here: ${node.services.map((s) => s.name).join(', ')}`);
  let orderId = '';
  await attempt('sell 10 BHP from account 101', async () => {
    const order = await node.call(sellShares, { accountId: '101', symbol: 'BHP', quantity: 10 });
    orderId = order.orderId;
    return `order ${order.orderId} ${order.status}`;
  });
  await attempt('sell 5000 BHP from account 101', async () => {
    const order = await node.call(sellShares, { accountId: '101', symbol: 'BHP', quantity: 5000 });
    return `order ${order.orderId} ${order.status}`;
  });
  await attempt('sell -3 "bhp" from account "abc"', async () => {
    // The input is wrong on purpose: the callee's contract refuses it before any handler runs.
    const order = await node.call(sellShares, { accountId: 'abc', symbol: 'bhp', quantity: -3 });
    return `order ${order.orderId} ${order.status}`;
  });
  if (orderId) {
    for (let i = 0; i < 50; i++) {
      const order = await node.call(getOrder, { orderId });
      if (order.status !== 'created') {
        say(`  order ${orderId}: ${order.history.map((h) => h.status).join(' → ')} (market placed it on the exchange)`);
        break;
      }
      await sleep(20);
    }
  }
  const nodes = node.registry.list();
  say(
    `  registry: ${nodes.length} node(s): ${nodes.map((n) => `${n.nodeId} [${n.services.map((s) => s.name).join(', ')}]`).join('; ')}`,
  );
}

await walkThrough(node);
if (process.argv.includes('--serve')) {
  say('Serving until Ctrl-C (SIGINT/SIGTERM drain the node gracefully).');
} else {
  await node.stop();
}
