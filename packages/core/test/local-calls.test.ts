import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import {
  action,
  ChassisError,
  type ChassisNode,
  createNode,
  defineError,
  defineService,
  handle,
  jwtVerifier,
  MemoryBroker,
  memoryTransport,
  type NodeOptions,
  signToken,
  type Transport,
} from '@chassis/core';
import { z } from 'zod';

const NotEnough = defineError('NOT_ENOUGH', { status: 409, retryable: false });
const reserve = action('ledger.reserve', {
  input: z.object({ accountId: z.string().regex(/^\d+$/), quantity: z.number().int().positive() }),
  output: z.object({ free: z.number().int() }),
  idempotent: true,
});
const slow = action('ledger.slow', { input: z.object({ ms: z.number() }), output: z.object({}), idempotent: true });
const whoAmI = action('ledger.whoAmI', {
  input: z.object({}),
  output: z.object({ subject: z.string() }),
  idempotent: true,
});

const secret = 'a-test-secret-of-at-least-32-characters';
const ledger = defineService({
  name: 'ledger',
  actions: [
    handle(reserve, ({ quantity }) => {
      if (quantity > 100) throw NotEnough(`${quantity} requested, 100 free`, { free: 100 });
      return { free: 100 - quantity };
    }),
    handle(slow, async ({ ms }) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return {};
    }),
    handle(whoAmI, (_input, ctx) => ({ subject: ctx.user?.subject ?? 'nobody' })),
  ],
});

/** A memory transport that counts the requests it carries. */
function countingTransport(broker: MemoryBroker): { transport: Transport; requests: () => number } {
  const transport = memoryTransport({ broker });
  let requests = 0;
  const request = transport.request.bind(transport);
  transport.request = (...args) => {
    requests++;
    return request(...args);
  };
  return { transport, requests: () => requests };
}

describe('local calls: a call to a service the node runs stays in the process, with the wire’s semantics', () => {
  const nodes: ChassisNode[] = [];
  afterEach(async () => {
    await Promise.allSettled(nodes.splice(0).map((node) => node.stop()));
  });
  async function start(options: Partial<NodeOptions> & { transport: Transport }) {
    const node = createNode({ services: [ledger], logLevel: 'silent', identity: jwtVerifier({ secret }), ...options });
    nodes.push(node);
    await node.start();
    return node;
  }

  it('answers without the transport, validates input, carries typed errors, times out at the deadline, verifies the caller', async () => {
    const counted = countingTransport(new MemoryBroker());
    const node = await start({ transport: counted.transport });
    assert.deepEqual(await node.call(reserve, { accountId: '101', quantity: 30 }), { free: 70 });

    const invalid = await node.call(reserve, { accountId: 'x', quantity: 0 }).catch((error: unknown) => error);
    assert.ok(invalid instanceof ChassisError);
    assert.equal(invalid.code, 'VALIDATION');
    assert.deepEqual((invalid.data as { fields: { path: string }[] }).fields.map((f) => f.path).sort(), [
      'accountId',
      'quantity',
    ]);

    const refused = await node.call(reserve, { accountId: '101', quantity: 101 }).catch((error: unknown) => error);
    assert.ok(refused instanceof ChassisError);
    assert.deepEqual(
      [refused.code, refused.status, refused.retryable, refused.data],
      ['NOT_ENOUGH', 409, false, { free: 100 }],
    );

    const late = await node.call(slow, { ms: 300 }, { timeoutMs: 50 }).catch((error: unknown) => error);
    assert.ok(late instanceof ChassisError);
    assert.equal(late.code, 'TIMEOUT');
    // The same data a broker's TIMEOUT carries: a caller cannot tell where the call was served.
    // (timeoutMs is what was left of the 50 ms when the call began to wait: a loaded machine may have spent some.)
    const { timeoutMs, ...target } = late.data as { service: string; action: string; timeoutMs: number };
    assert.deepEqual(target, { service: 'ledger', action: 'slow' });
    assert.ok(timeoutMs > 0 && timeoutMs <= 50, `timeoutMs ${timeoutMs}`);

    const token = await signToken(secret, { sub: 'alice', roles: ['customer'] });
    assert.equal((await node.call(whoAmI, {}, { auth: token })).subject, 'alice');
    const forged = await node.call(whoAmI, {}, { auth: `${token}x` }).catch((error: unknown) => error);
    assert.equal((forged as ChassisError).code, 'UNAUTHENTICATED');

    assert.equal(counted.requests(), 0, 'no request went through the transport');
    const metrics = await node.metrics.registry.metrics();
    assert.match(
      metrics,
      /chassis_rpc_server_duration_seconds_count\{service="ledger",action="reserve",outcome="ok"\} 1/,
    );
    assert.match(
      metrics,
      /chassis_rpc_server_duration_seconds_count\{service="ledger",action="reserve",outcome="NOT_ENOUGH"\} 1/,
    );
  });

  it('callNow: the output itself when a local handler answered at once, else a promise; a failure is a rejected promise, never a throw', async () => {
    const counted = countingTransport(new MemoryBroker());
    const node = await start({ transport: counted.transport });
    const atOnce = node.callNow(reserve, { accountId: '101', quantity: 30 });
    assert.ok(!(atOnce instanceof Promise), 'a handler that answered at once is answered without a promise');
    assert.deepEqual(atOnce, { free: 70 });

    const pending = node.callNow(slow, { ms: 1 });
    assert.ok(pending instanceof Promise, 'a handler still working is answered with a promise');
    assert.deepEqual(await pending, {});

    const invalid = node.callNow(reserve, { accountId: 'x', quantity: 0 });
    assert.ok(invalid instanceof Promise, 'bad input: a rejected promise, not a throw');
    assert.equal(((await invalid.catch((error: unknown) => error)) as ChassisError).code, 'VALIDATION');
    const refused = node.callNow(reserve, { accountId: '101', quantity: 101 });
    assert.ok(refused instanceof Promise);
    assert.equal(((await refused.catch((error: unknown) => error)) as ChassisError).code, 'NOT_ENOUGH');

    assert.equal(counted.requests(), 0, 'no request went through the transport');
    // Counted as every call is: the client and the server histogram.
    const metrics = await node.metrics.registry.metrics();
    assert.match(metrics, /chassis_rpc_client_duration_seconds_count\{target="ledger.reserve",outcome="ok"\} 1/);
    assert.match(
      metrics,
      /chassis_rpc_server_duration_seconds_count\{service="ledger",action="reserve",outcome="ok"\} 1/,
    );
  });

  it('localCalls: false sends every call through the transport, where other instances share them', async () => {
    const broker = new MemoryBroker();
    const counted = countingTransport(broker);
    const node = await start({ transport: counted.transport, localCalls: false });
    assert.deepEqual(await node.call(reserve, { accountId: '101', quantity: 1 }), { free: 99 });
    assert.equal(counted.requests(), 1);
  });

  it('stop() waits for a local call in flight: it answers before the node has stopped', async () => {
    const node = await start({ transport: memoryTransport({ broker: new MemoryBroker() }) });
    const order: string[] = [];
    const pending = node.call(slow, { ms: 200 }).then(() => order.push('answered'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const inFlight = async () =>
      (await node.metrics.registry.metrics()).match(/chassis_in_flight\{kind="rpc"\} (\d+)/)?.[1];
    assert.equal(await inFlight(), '1', 'the call in flight is counted');
    await node.stop().then(() => order.push('stopped'));
    await pending;
    assert.deepEqual(order, ['answered', 'stopped']);
    assert.equal(await inFlight(), '0', 'and no longer once it has answered');
  });
});
