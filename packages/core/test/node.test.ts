import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  action,
  ChassisError,
  type ChassisNode,
  createNode,
  defineService,
  event,
  handle,
  MemoryBroker,
  memoryTransport,
  type NodeOptions,
  on,
  redeliveryDelay,
  type ServiceDefinition,
} from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import { z } from 'zod';

const getOrder = action('orders.getOrder', {
  input: z.object({ orderId: z.string() }),
  output: z.object({ id: z.string(), status: z.enum(['created', 'placed']) }),
  idempotent: true,
});
const feeCharged = event('fees.fee_charged', z.object({ orderId: z.string(), amount: z.string() }));

describe('node runtime', () => {
  const nodes: ChassisNode[] = [];
  afterEach(async () => {
    await Promise.allSettled(nodes.splice(0).map((node) => node.stop()));
  });

  async function start(services: ServiceDefinition[], broker: MemoryBroker, options: Partial<NodeOptions> = {}) {
    const node = createNode({ services, transport: memoryTransport({ broker }), logLevel: 'silent', ...options });
    nodes.push(node);
    await node.start();
    return node;
  }

  it('a handler output that breaks its contract is an INTERNAL error naming the fields (development and test)', async () => {
    const broker = new MemoryBroker();
    const orders = defineService({
      name: 'orders',
      // The cast stands for a handler whose data drifted from its contract.
      actions: [
        handle(getOrder, () => ({ id: 'o-1', status: 'shipped' }) as unknown as { id: string; status: 'placed' }),
      ],
    });
    const node = await start([orders], broker);
    await assert.rejects(node.call(getOrder, { orderId: 'o-1' }), (error: ChassisError) => {
      assert.equal(error.code, 'INTERNAL');
      assert.match(error.message, /output of orders.getOrder does not match its contract: status/);
      return true;
    });
    // In production the check is off: the serving node sends what the handler returned.
    const lenient = await start([orders], new MemoryBroker(), { validateOutput: false });
    assert.deepEqual(await lenient.call(getOrder, { orderId: 'o-1' }), { id: 'o-1', status: 'shipped' });
  });

  it('an event that breaks its contract is refused at emit, naming the fields', async () => {
    const node = await start([], new MemoryBroker());
    await assert.rejects(
      // @ts-expect-error amount must be a decimal string: the type system says so, and so does the runtime.
      node.emit(feeCharged, { orderId: 'o-1', amount: 1.5 }),
      (error: ChassisError) => error.code === 'VALIDATION' && /amount/.test(error.message),
    );
  });

  it('an event handler failing with a non-retryable error is dead-lettered at once', async () => {
    const broker = new MemoryBroker();
    let calls = 0;
    const notifications = defineService({
      name: 'notifications',
      events: [
        on(feeCharged, () => {
          calls++;
          throw new ChassisError('FORBIDDEN', 'customer opted out of fee notices');
        }),
      ],
    });
    const node = await start([notifications], broker);
    await node.emit(feeCharged, { orderId: 'o-1', amount: '1.00' });
    await waitUntil(async () => (await node.transport.readDeadLetters('notifications.fee_charged')).length === 1);
    const [letter] = await node.transport.readDeadLetters('notifications.fee_charged');
    assert.match(letter!.reason, /failed permanently \(FORBIDDEN: customer opted out/);
    assert.equal(calls, 1);
  });

  it('an event past its deadline is dead-lettered, not handled', async () => {
    const broker = new MemoryBroker();
    let calls = 0;
    const fees = defineService({ name: 'notifications', events: [on(feeCharged, () => void calls++)] });
    const node = await start([fees], broker);
    await node.emit(feeCharged, { orderId: 'o-1', amount: '1.00' }, { deadline: Date.now() - 1 });
    await waitUntil(async () => (await node.transport.readDeadLetters('notifications.fee_charged')).length === 1);
    assert.equal(calls, 0);
  });

  it('a drain that outlasts its timeout aborts the handlers in flight', async () => {
    const broker = new MemoryBroker();
    let aborted = false;
    const slow = defineService({
      name: 'orders',
      actions: [
        handle(getOrder, async (_input, ctx) => {
          await sleep(60_000, undefined, { signal: ctx.signal }).catch(() => {
            aborted = true;
          });
          return { id: 'o-1', status: 'created' as const };
        }),
      ],
    });
    const server = await start([slow], broker, { drainTimeoutMs: 100 });
    const caller = await start([], broker);
    // The call's deadline is as far off as the handler's minute: only the drain timeout can abort it soon.
    const call = caller.call(getOrder, { orderId: 'o-1' }, { timeoutMs: 60_000 }).catch((e: unknown) => e);
    await sleep(50);
    const started = Date.now();
    await server.stop();
    // The handler would run a minute: stopping well before that, with its signal aborted, is the drain
    // timeout at work; the bound leaves a loaded machine seconds of slack.
    assert.ok(Date.now() - started < 20_000, `stopped after ${Date.now() - started} ms`);
    assert.ok(aborted, 'the handler saw its signal abort');
    assert.equal(server.state, 'stopped');
    await call;
  });

  it('start hooks run before messages are taken, stop hooks after, in reverse order', async () => {
    const steps: string[] = [];
    const service = (name: string) =>
      defineService({
        name,
        start: () => void steps.push(`start ${name}`),
        stop: () => void steps.push(`stop ${name}`),
      });
    const node = await start([service('orders'), service('market')], new MemoryBroker());
    assert.equal(node.state, 'running');
    await node.stop();
    assert.deepEqual(steps, ['start orders', 'start market', 'stop market', 'stop orders']);
    await assert.rejects(node.start(), /a node starts once/);
  });

  it('an extension is told once the node runs (its calls served) and as the drain begins (before stop hooks)', async () => {
    const steps: string[] = [];
    const orders = defineService({
      name: 'orders',
      actions: [handle(getOrder, ({ orderId }) => ({ id: orderId, status: 'placed' as const }))],
      stop: () => void steps.push('stop hook'),
    });
    const node = await start([orders], new MemoryBroker(), {
      extensions: [
        {
          name: 'watcher',
          async start(node) {
            steps.push(`start ${node.state}`);
          },
          async started(node) {
            const order = await node.call(getOrder, { orderId: 'o-1' });
            steps.push(`started ${node.state} ${order.status}`);
          },
          async draining(node) {
            steps.push(`draining ${node.state}`);
            await sleep(20);
            steps.push('drained');
          },
          async stop() {
            steps.push('stop');
          },
        },
      ],
    });
    await node.stop();
    assert.deepEqual(steps, [
      'start starting',
      'started running placed',
      'draining draining',
      'drained',
      'stop hook',
      'stop',
    ]);
  });

  it('redelivery delays grow per attempt up to the cap, spread in the upper half', () => {
    const settings = { initialDelayMs: 100, maxDelayMs: 1000 };
    for (let i = 0; i < 50; i++) {
      const first = redeliveryDelay(1, settings);
      const third = redeliveryDelay(3, settings);
      const tenth = redeliveryDelay(10, settings);
      assert.ok(first >= 50 && first <= 100, `attempt 1: ${first}`);
      assert.ok(third >= 200 && third <= 400, `attempt 3: ${third}`);
      assert.ok(tenth >= 500 && tenth <= 1000, `attempt 10: ${tenth}`);
    }
  });
});
