import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ChassisError,
  type ChassisNode,
  createNode,
  defineService,
  type EventHandlerOptions,
  event,
  Header,
  MemoryBroker,
  memoryTransport,
  type NodeOptions,
  on,
  redeliveryDelay,
} from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import { z } from 'zod';

// What the node does with each delivered event — ack, redeliver or dead-letter — by what happened to it.
// Each case is one a mutation run (npm run mutate -- node) showed no other test noticed breaking.

const feeCharged = event('fees.fee_charged', z.object({ orderId: z.string(), amount: z.string() }));
const subscription = 'notifications.fee_charged';

describe('event disposition', () => {
  const nodes: ChassisNode[] = [];
  afterEach(async () => {
    await Promise.allSettled(nodes.splice(0).map((node) => node.stop()));
  });

  /** A node whose only handler is `run`; redeliveries come back within tens of ms. */
  async function start(
    run: (attempt: number) => Promise<void> | void,
    options: EventHandlerOptions = {},
    nodeOptions: Partial<NodeOptions> = {},
  ) {
    const notifications = defineService({
      name: 'notifications',
      events: [on(feeCharged, (_payload, ctx) => run(ctx.attempt), options)],
    });
    const node = createNode({
      services: [notifications],
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logLevel: 'silent',
      maxDeliveries: 3,
      redelivery: { initialDelayMs: 10, maxDelayMs: 40 },
      ...nodeOptions,
    });
    nodes.push(node);
    await node.start();
    return node;
  }

  const deadLetters = (node: ChassisNode) => node.transport.readDeadLetters(subscription);

  /** The node's counts of deliveries by outcome, redeliveries and dead letters of the subscription. */
  async function counted(node: ChassisNode) {
    const outcomes: Record<string, number> = {};
    for (const { labels, value, metricName } of (await node.metrics.eventHandler.get()).values) {
      if (metricName === 'chassis_event_handler_duration_seconds_count' && labels.subscription === subscription) {
        outcomes[String(labels.outcome)] = value;
      }
    }
    const redeliveries = (await node.metrics.redeliveries.get()).values;
    const deadLetters = (await node.metrics.deadLetters.get()).values;
    return {
      outcomes,
      redeliveries: redeliveries.find((v) => v.labels.subscription === subscription)?.value ?? 0,
      deadLetters: deadLetters.find((v) => v.labels.queue === subscription)?.value ?? 0,
    };
  }

  it('an event whose deadline is still ahead is handled once and acknowledged, not dead-lettered', async () => {
    const attempts: number[] = [];
    const node = await start((attempt) => void attempts.push(attempt));
    await node.emit(feeCharged, { orderId: 'o-1', amount: '1.00' }, { deadline: Date.now() + 300_000 });
    await waitUntil(() => attempts.length === 1);
    // An acknowledged event does not come back: a redelivery would be due within 40 ms.
    await sleep(300);
    assert.deepEqual(attempts, [1]);
    assert.deepEqual(await deadLetters(node), []);
  });

  it('a retryable error redelivers the event past maxDeliveries and never dead-letters it', async () => {
    const attempts: number[] = [];
    const node = await start((attempt) => {
      attempts.push(attempt);
      // A dependency is away for longer than maxDeliveries (3) attempts: the event waits, it is not lost.
      if (attempt <= 4) throw new ChassisError('UNAVAILABLE', 'ledger unreachable');
    });
    await node.emit(feeCharged, { orderId: 'o-1', amount: '1.00' });
    await waitUntil(() => attempts.length === 5);
    assert.deepEqual(attempts, [1, 2, 3, 4, 5]);
    await sleep(300);
    assert.equal(attempts.length, 5, 'handled on attempt 5, then acknowledged');
    assert.deepEqual(await deadLetters(node), []);
    assert.deepEqual(await counted(node), { outcomes: { UNAVAILABLE: 4, ok: 1 }, redeliveries: 4, deadLetters: 0 });
  });

  it("a retryable error's redelivery delay grows from the first attempt's, not from the cap", async () => {
    const attempts: number[] = [];
    const node = await start(
      (attempt) => {
        attempts.push(attempt);
        if (attempt === 1) throw new ChassisError('UNAVAILABLE', 'ledger unreachable');
      },
      {},
      // The first redelivery is due within 10 ms; the cap is a minute, which would time this test out.
      { redelivery: { initialDelayMs: 10, maxDelayMs: 60_000 } },
    );
    await node.emit(feeCharged, { orderId: 'o-1', amount: '1.00' });
    await waitUntil(() => attempts.length === 2, { timeoutMs: 20_000 });
  });

  it('a retryable error waits at least the retryAfterMs its target asked for', async () => {
    const at: number[] = [];
    const node = await start(() => {
      at.push(Date.now());
      if (at.length === 1) throw new ChassisError('RATE_LIMITED', 'slow down', { data: { retryAfterMs: 400 } });
    });
    await node.emit(feeCharged, { orderId: 'o-1', amount: '1.00' });
    await waitUntil(() => at.length === 2);
    // Only a lower bound: a loaded machine can make it later, never sooner (timers may fire 1 ms early).
    assert.ok(at[1]! - at[0]! >= 395, `redelivered after ${at[1]! - at[0]!} ms`);
  });

  it('a plain error is tried maxDeliveries times, then dead-lettered with the count and the last error', async () => {
    const attempts: number[] = [];
    const node = await start((attempt) => {
      attempts.push(attempt);
      throw new Error(`boom ${attempt}`);
    });
    await node.emit(feeCharged, { orderId: 'o-1', amount: '1.00' });
    await waitUntil(async () => (await deadLetters(node)).length === 1);
    assert.deepEqual(attempts, [1, 2, 3]);
    const [letter] = await deadLetters(node);
    assert.match(letter!.reason, /^failed 3 times; last error INTERNAL: boom 3$/);
    // What the dead-letter alert and the dashboards read.
    assert.deepEqual(await counted(node), { outcomes: { INTERNAL: 3 }, redeliveries: 2, deadLetters: 1 });
  });

  it("a handler's own maxDeliveries overrides the node's", async () => {
    const attempts: number[] = [];
    const node = await start(
      (attempt) => {
        attempts.push(attempt);
        throw new Error('boom');
      },
      { maxDeliveries: 1 },
    );
    await node.emit(feeCharged, { orderId: 'o-1', amount: '1.00' });
    await waitUntil(async () => (await deadLetters(node)).length === 1);
    assert.deepEqual(attempts, [1]);
  });

  it('a handler that outlives its own timeout uses up its deliveries like any failure', async () => {
    const attempts: number[] = [];
    const node = await start(
      async (attempt) => {
        attempts.push(attempt);
        await new Promise(() => {});
      },
      { timeoutMs: 50, maxDeliveries: 2 },
    );
    await node.emit(feeCharged, { orderId: 'o-1', amount: '1.00' });
    await waitUntil(async () => (await deadLetters(node)).length === 1);
    assert.deepEqual(attempts, [1, 2]);
    const [letter] = await deadLetters(node);
    assert.match(letter!.reason, /^failed 2 times; last error TIMEOUT/);
  });

  it('a payload that breaks the contract is dead-lettered at once, naming the field, without running the handler', async () => {
    const attempts: number[] = [];
    const node = await start((attempt) => void attempts.push(attempt));
    await node.transport.publish(feeCharged.name, {
      headers: { [Header.id]: 'm-1', [Header.type]: feeCharged.name },
      body: Buffer.from(JSON.stringify({ orderId: 'o-1', amount: 1.5 })),
    });
    await waitUntil(async () => (await deadLetters(node)).length === 1);
    const [letter] = await deadLetters(node);
    assert.match(letter!.reason, /^payload does not match fees\.fee_charged: .*amount/);
    assert.deepEqual(attempts, []);
    assert.deepEqual(await counted(node), { outcomes: { BAD_MESSAGE: 1 }, redeliveries: 0, deadLetters: 1 });
  });

  it('a body that is not valid UTF-8 is dead-lettered, not patched with U+FFFD and handled', async () => {
    const attempts: number[] = [];
    const node = await start((attempt) => void attempts.push(attempt));
    await node.transport.publish(feeCharged.name, {
      headers: { [Header.id]: 'm-3', [Header.type]: feeCharged.name },
      body: Buffer.concat([Buffer.from('{"orderId": "o-'), Buffer.from([0xff]), Buffer.from('", "amount": "1.00"}')]),
    });
    await waitUntil(async () => (await deadLetters(node)).length === 1);
    assert.deepEqual(attempts, []);
  });

  it('a body that is not valid JSON is dead-lettered at once without running the handler', async () => {
    const attempts: number[] = [];
    const node = await start((attempt) => void attempts.push(attempt));
    await node.transport.publish(feeCharged.name, {
      headers: { [Header.id]: 'm-2', [Header.type]: feeCharged.name },
      body: Buffer.from('{"orderId": '),
    });
    await waitUntil(async () => (await deadLetters(node)).length === 1);
    const [letter] = await deadLetters(node);
    assert.match(letter!.reason, /not valid application\/json/);
    assert.deepEqual(attempts, []);
  });

  it('redelivery delays are spread over the whole upper half of each ceiling', () => {
    const delays = Array.from({ length: 400 }, () => redeliveryDelay(1, { initialDelayMs: 100, maxDelayMs: 1000 }));
    // Uniform in [50, 100]: 400 draws all missing a fifth of the range has odds of 0.8^400.
    assert.ok(Math.min(...delays) < 60, `lowest ${Math.min(...delays)}`);
    assert.ok(Math.max(...delays) > 90, `highest ${Math.max(...delays)}`);
  });

  it('the handler sees the earlier of its own timeout and the event deadline as its deadline', async () => {
    const deadlines: number[] = [];
    const notifications = defineService({
      name: 'notifications',
      events: [on(feeCharged, (_payload, ctx) => void deadlines.push(ctx.deadline), { timeoutMs: 600_000 })],
    });
    const node = createNode({
      services: [notifications],
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logLevel: 'silent',
    });
    nodes.push(node);
    await node.start();
    await node.emit(feeCharged, { orderId: 'o-1', amount: '1.00' }, { deadline: Date.now() + 120_000 });
    await node.emit(feeCharged, { orderId: 'o-2', amount: '1.00' });
    await waitUntil(() => deadlines.length === 2);
    // The event's two minutes are sooner than the handler's ten; without a deadline, the ten minutes decide.
    // (Wide margins: how the deadline travels may change, and a loaded machine is slow.)
    const now = Date.now();
    assert.ok(deadlines[0]! > now + 60_000 && deadlines[0]! < now + 180_000, `first: ${deadlines[0]! - now} ms ahead`);
    assert.ok(deadlines[1]! > now + 500_000, `second: ${deadlines[1]! - now} ms ahead`);
  });
});
