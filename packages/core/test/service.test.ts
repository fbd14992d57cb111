import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { action, defineService, event, every, handle, on, topology } from '@chassis/core';
import { z } from 'zod';

const sellShares = action('orders.sellShares', {
  input: z.object({ accountId: z.string(), symbol: z.string(), quantity: z.number().int().positive() }),
  output: z.object({ orderId: z.string(), status: z.string() }),
});
const requestReservation = action('account-transactions.requestReservation', {
  input: z.object({ orderId: z.string() }),
  output: z.object({ reservationId: z.string() }),
  idempotent: true,
});
const orderCreated = event('orders.order_created', z.object({ orderId: z.string() }));

describe('contracts and service definitions', () => {
  it('splits contract names into service and action or event', () => {
    assert.equal(sellShares.service, 'orders');
    assert.equal(sellShares.action, 'sellShares');
    assert.equal(sellShares.idempotent, false);
    assert.equal(requestReservation.idempotent, true);
    assert.equal(orderCreated.source, 'orders');
    assert.equal(orderCreated.event, 'order_created');
  });

  it('refuses names that are not <service>.<name>', () => {
    assert.throws(
      () => action('sellShares', { input: z.object({}), output: z.object({}) }),
      /must be "<service>.<name>"/,
    );
    assert.throws(() => event('Orders.created', z.object({})), /lower-case service name/);
  });

  it('refuses a service serving another service’s action, or the same handler twice, listing every problem', () => {
    assert.throws(
      () =>
        defineService({
          name: 'orders',
          actions: [
            handle(requestReservation, () => ({ reservationId: 'r' })),
            handle(sellShares, () => ({ orderId: 'o', status: 's' })),
            handle(sellShares, () => ({ orderId: 'o', status: 's' })),
          ],
          events: [on(orderCreated, () => {}), on(orderCreated, () => {})],
        }),
      (error: Error) =>
        /belongs to service "account-transactions"/.test(error.message) &&
        /handled twice/.test(error.message) &&
        /two event handlers are named "order_created"/.test(error.message),
    );
  });

  it('lists the topology without running anything', () => {
    const orders = defineService({
      name: 'orders',
      version: '1.2.0',
      uses: [requestReservation, orderCreated],
      actions: [handle(sellShares, () => ({ orderId: 'o', status: 'created' }))],
      schedules: [every('sweep-stale-orders', 30_000, () => {})],
    });
    const market = defineService({ name: 'market', events: [on(orderCreated, () => {})] });
    assert.deepEqual(topology([orders, market]), [
      {
        service: 'orders',
        version: '1.2.0',
        serves: [{ action: 'orders.sellShares', idempotent: false }],
        consumes: [],
        schedules: [{ name: 'sweep-stale-orders', everyMs: 30_000, scope: 'cluster' }],
        calls: ['account-transactions.requestReservation'],
        emits: ['orders.order_created'],
      },
      {
        service: 'market',
        version: '0.0.0',
        serves: [],
        consumes: [{ event: 'orders.order_created', subscription: 'market.order_created' }],
        schedules: [],
        calls: [],
        emits: [],
      },
    ]);
  });
});
