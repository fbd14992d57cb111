import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type ChassisError,
  type CircuitBreaker,
  createNode,
  defineService,
  MemoryBroker,
  memoryTransport,
} from '@chassis/core';

/**
 * A service's breaker for something that is not an action (an HTTP API it calls): the node owns it, so
 * its state is in the metrics and readiness like the breakers of actions, and every service naming the
 * target shares it.
 */
describe('service.breaker: a node-owned breaker for a target that is not an action', () => {
  it('opens after its failures, fails fast, and shows in the metrics and readiness; the target is shared', async () => {
    let fromPayments: CircuitBreaker | undefined;
    let fromRefunds: CircuitBreaker | undefined;
    const payments = defineService({
      name: 'payments',
      start: (service) => {
        fromPayments = service.breaker('card-processor', { kind: 'consecutive', failures: 2, openMs: 60_000 });
      },
    });
    const refunds = defineService({
      name: 'refunds',
      start: (service) => {
        fromRefunds = service.breaker('card-processor');
      },
    });
    const node = createNode({
      services: [payments, refunds],
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logLevel: 'silent',
    });
    await node.start();
    try {
      assert.ok(fromPayments && fromPayments === fromRefunds, 'one breaker per target on the node');
      assert.equal((await node.readiness()).status, 'pass');

      const down = () => Promise.reject(new Error('connection refused'));
      for (let i = 0; i < 2; i++) await assert.rejects(fromPayments.execute(down), /connection refused/);
      assert.equal(fromPayments.state, 'open');
      let ran = false;
      await assert.rejects(
        fromRefunds!.execute(async () => {
          ran = true;
        }),
        (error: ChassisError) => error.code === 'CIRCUIT_OPEN',
      );
      assert.equal(ran, false, 'an open breaker does not call the target');
      assert.throws(
        () => fromPayments!.failFastIfOpen(),
        (error: ChassisError) => error.code === 'CIRCUIT_OPEN',
      );

      const metrics = await node.metrics.text();
      assert.match(metrics, /chassis_circuit_breaker_state\{target="card-processor"\} 1/);
      assert.match(metrics, /chassis_circuit_breaker_transitions_total\{target="card-processor",state="open"\} 1/);
      const readiness = await node.readiness();
      assert.equal(readiness.status, 'warn');
      assert.match(JSON.stringify(readiness), /open: card-processor/);
    } finally {
      await node.stop();
    }
  });
});
