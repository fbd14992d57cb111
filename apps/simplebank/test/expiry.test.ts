import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { requestJson, waitUntil } from '@chassis/testing';
import { type Simplebank, startSimplebank } from '../src/system.ts';
import { settleAndCheckInvariants } from './invariants.ts';

/**
 * Step 7 of the sell-order flow: an order the exchange could not be given before its expiry fails,
 * and what it reserved is released — while an order already being placed when the exchange went down
 * is placed once it recovers (the exchange may have taken it; asking again finds out, never trades twice).
 */
describe('SimpleBank: an order that cannot be placed before its expiry fails', () => {
  let bank: Simplebank;
  let token: string;
  before(async () => {
    bank = await startSimplebank({
      port: 0,
      databaseUrl: 'pglite://memory',
      env: { CHASSIS_TRANSPORT: 'memory', OPS_PORT: 'off', LOG_LEVEL: 'silent' },
      services: {
        orders: { expiryMs: 1500 },
        market: { breaker: { kind: 'consecutive', failures: 1, openMs: 3000 }, timeoutMs: 500 },
      },
    });
    const issued = await requestJson(bank.url!, 'POST', '/auth/token', {
      username: 'alice',
      password: 'alice-password',
    });
    token = String(issued.body.access_token);
  });
  after(() => bank?.stop());

  const send = (method: string, path: string, body?: unknown) => requestJson(bank.url!, method, path, body, token);
  const statusOf = async (id: string) => String((await send('GET', `/orders/${id}`)).body.status);

  it('the order waiting out the outage fails at its expiry; the one already being placed completes', async () => {
    bank.exchange!.configure({ outage: true });
    const placing = String(
      (await send('POST', '/shares/sell', { accountId: '101', symbol: 'GOOG', quantity: 2 })).body.orderId,
    );
    // Its placement failed at the exchange and opened the breaker: the next order is not taken up.
    await waitUntil(() => bank.exchange!.stats().errors >= 1, { what: 'the exchange to refuse the first order' });
    const waiting = String(
      (await send('POST', '/shares/sell', { accountId: '101', symbol: 'GOOG', quantity: 3 })).body.orderId,
    );
    await new Promise((resolve) => setTimeout(resolve, 1600));
    bank.exchange!.configure({ outage: false });
    await waitUntil(async () => (await statusOf(waiting)) === 'failed', {
      timeoutMs: 30_000,
      what: 'the expired order failed',
    });
    const failed = (await send('GET', `/orders/${waiting}`)).body as { reason: string; fee: string | null };
    assert.match(failed.reason, /expired/);
    assert.equal(failed.fee, null, 'never placed, never charged');
    await waitUntil(async () => (await statusOf(placing)) === 'completed', {
      timeoutMs: 30_000,
      what: 'the first order completed',
    });
    await settleAndCheckInvariants(bank.database);
  });
});
