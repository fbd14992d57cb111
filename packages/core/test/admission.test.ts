import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
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
  on,
} from '@chassis/core';
import { z } from 'zod';

/**
 * Admission (NodeOptions.maxEventDelayMs): on the memory transport, a call from outside — new work —
 * waits while an event delivery is pending (queued or being handled), so that what was accepted
 * finishes first. `maxEventDelayMs: 0` makes any pending delivery count, so the tests need no clock.
 */

const ticked = event('work.ticked', z.object({ n: z.number() }));
const start = action('work.start', { input: z.object({ n: z.number() }), output: z.object({}) });
const read = action('work.read', { input: z.object({}), output: z.object({ log: z.array(z.string()) }) });

/** A gate the event handler waits at, opened by the test. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** Lets everything that can run, run: handlers delivered on later turns included. */
async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

const nodes: ChassisNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((node) => node.stop()));
});

async function system(options: { maxEventDelayMs?: number } = {}) {
  const log: string[] = [];
  const held = gate();
  const service = defineService({
    name: 'work',
    actions: [
      handle(start, async ({ n }, ctx) => {
        log.push(`start ${n}`);
        await ctx.emit(ticked, { n });
        return {};
      }),
      handle(read, () => ({ log: [...log] })),
    ],
    events: [
      on(
        ticked,
        async ({ n }) => {
          await held.opened;
          log.push(`ticked ${n}`);
        },
        { prefetch: 1 },
      ),
    ],
  });
  const node = createNode({
    services: [service],
    transport: memoryTransport({ broker: new MemoryBroker() }),
    logLevel: 'silent',
    maxEventDelayMs: 0,
    ...options,
  });
  nodes.push(node);
  await node.start();
  return {
    node,
    log,
    openForGood() {
      held.open();
    },
  };
}

describe('admission of calls from outside (memory transport)', () => {
  it('holds a new call while deliveries of accepted work wait, and lets it in once they are handled', async () => {
    const { node, log, openForGood } = await system();
    // Two accepted flows: the first event is being handled (prefetch 1), the second waits behind it
    // (published from outside: an emit is not held).
    await node.emit(ticked, { n: 1 });
    await node.emit(ticked, { n: 2 });
    await settle();
    let answered = false;
    const third = node.call(start, { n: 3 }).then(() => {
      answered = true;
    });
    await settle();
    assert.equal(answered, false, 'the new call waits while a delivery waits');
    assert.deepEqual(log, []);
    openForGood();
    await third;
    // The work accepted before it was done first.
    assert.deepEqual(log.slice(0, 3), ['ticked 1', 'ticked 2', 'start 3']);
  });

  it('lets every waiting call in, in order, though the calls let in add no work', async () => {
    const { node, log, openForGood } = await system();
    await node.emit(ticked, { n: 1 });
    await node.emit(ticked, { n: 2 });
    await settle();
    const order: number[] = [];
    const reads = [1, 2, 3, 4, 5].map((i) => node.call(read, {}).then(() => order.push(i)));
    await settle();
    assert.deepEqual(order, []);
    openForGood();
    await Promise.all(reads);
    assert.deepEqual(order, [1, 2, 3, 4, 5]);
    assert.deepEqual(log, ['ticked 1', 'ticked 2']);
  });

  it('fails a call that could not be admitted before its deadline with TIMEOUT', async () => {
    const { node, openForGood } = await system();
    await node.emit(ticked, { n: 1 });
    await node.emit(ticked, { n: 2 });
    await settle();
    await assert.rejects(node.call(start, { n: 3 }, { timeoutMs: 1 }), (error: unknown) => {
      assert.ok(error instanceof ChassisError);
      assert.equal(error.code, 'TIMEOUT');
      return true;
    });
    openForGood();
  });

  it('does not hold calls made by handlers: they continue accepted work', async () => {
    const log: string[] = [];
    const held = gate();
    const service = defineService({
      name: 'work',
      actions: [
        handle(start, async ({ n }, ctx) => {
          await ctx.emit(ticked, { n });
          return {};
        }),
        handle(read, () => ({ log: [...log] })),
      ],
      events: [
        // Holds the first event, so the second waits behind it.
        on(ticked, () => held.opened, { prefetch: 1, name: 'held' }),
        // Meanwhile this handler of the same events calls the service: it is not held back.
        on(
          ticked,
          async ({ n }, ctx) => {
            await ctx.call(read, {});
            log.push(`read ${n}`);
          },
          { name: 'reader' },
        ),
      ],
    });
    const node = createNode({
      services: [service],
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logLevel: 'silent',
      maxEventDelayMs: 0,
    });
    nodes.push(node);
    await node.start();
    await node.emit(ticked, { n: 1 });
    await node.emit(ticked, { n: 2 });
    await settle();
    assert.deepEqual(log.toSorted(), ['read 1', 'read 2']);
    held.open();
  });

  it('counts deliveries only while someone in the process consumes their subscription', async () => {
    const broker = new MemoryBroker();
    const held = gate();
    const handled: number[] = [];
    const consumer = () =>
      createNode({
        services: [
          defineService({
            name: 'audit',
            events: [
              on(ticked, async ({ n }) => {
                await held.opened;
                handled.push(n);
              }),
            ],
          }),
        ],
        transport: memoryTransport({ broker }),
        logLevel: 'silent',
      });
    const caller = createNode({
      services: [defineService({ name: 'work', actions: [handle(read, () => ({ log: [] }))] })],
      transport: memoryTransport({ broker }),
      logLevel: 'silent',
      maxEventDelayMs: 0,
    });
    nodes.push(caller);
    await caller.start();
    // The subscription is bound, then its only consumer leaves: what is published to it now waits for a
    // later process, not behind work in this one.
    const first = consumer();
    await first.start();
    await first.stop();
    await caller.emit(ticked, { n: 1 });
    await settle();
    await caller.call(read, {});
    // Consumed again: the delivery is being handled, and new work waits for it.
    const second = consumer();
    nodes.push(second);
    await second.start();
    await settle();
    let answered = false;
    const call = caller.call(read, {}).then(() => {
      answered = true;
    });
    await settle();
    assert.equal(answered, false, 'the new call waits while the delivery is handled');
    held.open();
    await call;
    assert.deepEqual(handled, [1]);
  });

  it('takes calls at once with admission off, whatever waits', async () => {
    const { node, log, openForGood } = await system({ maxEventDelayMs: Number.POSITIVE_INFINITY });
    await node.call(start, { n: 1 });
    await node.call(start, { n: 2 });
    await node.call(start, { n: 3 });
    assert.deepEqual(log, ['start 1', 'start 2', 'start 3']);
    openForGood();
  });
});
