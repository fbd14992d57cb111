import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ActionContract, signToken } from '@chassis/core';
import { requestJson, waitUntil } from '@chassis/testing';
import { listTransactions } from '../contracts/account-transactions.ts';
import { listOrders } from '../contracts/customer-orders.ts';
import { getHoldings } from '../contracts/holdings.ts';
import { listNotifications } from '../contracts/notifications.ts';
import { buyShares, sellShares } from '../contracts/orders.ts';
import { createPayment } from '../contracts/payments.ts';
import { invest } from '../contracts/strategies.ts';
import { type Simplebank, startSimplebank } from '../src/system.ts';

/** A JSON answer: a success body, or the gateway's error shape. */
type Answer = Record<string, unknown> & {
  error?: { code: string; message: string; details?: { fields: { path: string }[] } };
};

/** SimpleBank through its gateway over HTTP, all in one process on the embedded default. */
describe('SimpleBank through the gateway, embedded (memory transport, PGlite)', () => {
  let bank: Simplebank;
  let url: string;
  before(async () => {
    bank = await startSimplebank({
      port: 0,
      databaseUrl: 'pglite://memory',
      env: { CHASSIS_TRANSPORT: 'memory', OPS_PORT: 'off', LOG_LEVEL: 'silent' },
    });
    url = bank.url!;
  });
  after(() => bank.stop());

  const send = (method: string, path: string, body?: unknown, token?: string) =>
    requestJson<Answer>(url, method, path, body, token);
  const login = async (username: string, password: string) =>
    String((await send('POST', '/auth/token', { username, password })).body.access_token);

  it('GET /health is public and tells the time', async () => {
    const health = await send('GET', '/health');
    assert.equal(health.status, 200);
    assert.ok(Date.parse(String(health.body.ok)) > 0);
  });

  it('POST /auth/token: the seed users get a token with their roles and accounts; a wrong password is a 401', async () => {
    const issued = await send('POST', '/auth/token', { username: 'alice', password: 'alice-password' });
    assert.equal(issued.status, 200);
    assert.equal(issued.body.token_type, 'Bearer');
    assert.equal(issued.body.expires_in, 3600);
    const payload = String(issued.body.access_token).split('.')[1] ?? '';
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    assert.deepEqual([claims.sub, claims.roles, claims.accounts], ['alice', ['customer'], ['101']]);

    for (const [username, password] of [
      ['alice', 'bob-password'],
      ['mallory', 'alice-password'],
    ]) {
      const refused = await send('POST', '/auth/token', { username, password });
      assert.equal(refused.status, 401);
      assert.equal(refused.body.error?.code, 'UNAUTHENTICATED');
      assert.equal(refused.body.error?.message, 'Wrong username or password', 'the same answer for both mistakes');
    }
    const bad = await send('POST', '/auth/token', { username: '' });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.error?.details?.fields.map((f) => f.path).sort(), ['password', 'username']);
  });

  it('a sell order: 202 with Location, then placed; too many shares 409; another customer’s account 403; bad input 400', async () => {
    const alice = await login('alice', 'alice-password');
    const sold = await send('POST', '/shares/sell', { accountId: '101', symbol: 'GOOG', quantity: 3 }, alice);
    assert.equal(sold.status, 202);
    assert.equal(sold.body.ok, `sell order ${sold.body.orderId} placed`);
    assert.equal(sold.headers.get('location'), `/orders/${sold.body.orderId}`);
    await waitUntil(
      async () => (await send('GET', `/orders/${sold.body.orderId}`, undefined, alice)).body.status === 'completed',
      { what: 'the order completed' },
    );

    const tooMany = await send('POST', '/shares/sell', { accountId: '101', symbol: 'GOOG', quantity: 500 }, alice);
    assert.equal(tooMany.status, 409);
    assert.equal(tooMany.body.error?.code, 'INSUFFICIENT_SHARES');

    const bobs = await send('POST', '/shares/sell', { accountId: '102', symbol: 'BHP', quantity: 1 }, alice);
    assert.equal(bobs.status, 403);

    const bad = await send('POST', '/shares/sell', { accountId: '101', symbol: 'goog', quantity: 0 }, alice);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error?.code, 'VALIDATION');

    assert.equal((await send('POST', '/shares/sell', { accountId: '101', symbol: 'GOOG', quantity: 1 })).status, 401);
    const bob = await login('bob', 'bob-password');
    const peek = await send('GET', `/orders/${sold.body.orderId}`, undefined, bob);
    assert.equal(peek.status, 403, 'another customer’s order');
    const forged = await signToken('somebody-elses-secret-of-32-characters', { sub: 'alice', roles: ['admin'] });
    assert.equal((await send('GET', `/orders/${sold.body.orderId}`, undefined, forged)).status, 401);
  });

  /** How many requests the action's service has served (any outcome): its own server metric. */
  const served = async (contract: ActionContract) => {
    const labels = [`service="${contract.service}"`, `action="${contract.action}"`];
    return (await bank.node.metrics.text())
      .split('\n')
      .filter((line) => line.startsWith('chassis_rpc_server_duration_seconds_count{'))
      .filter((line) => labels.every((label) => line.includes(label)))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  };

  it('the gateway itself refuses another customer’s account (403) on every route naming one: the service is never called', async () => {
    const alice = await login('alice', 'alice-password');
    const strategy = '00000000-0000-4000-8000-00000000a001';
    const payment = '00000000-0000-4000-8000-00000000a002';
    // Each route that names an account, the action behind it, and the request for a given account.
    const routes: [ActionContract, (account: string) => [string, string, unknown?]][] = [
      [sellShares, (a) => ['POST', '/shares/sell', { accountId: a, symbol: 'BHP', quantity: 1 }]],
      [buyShares, (a) => ['POST', '/shares/buy', { accountId: a, symbol: 'ABC', quantity: 1 }]],
      [listOrders, (a) => ['GET', `/orders?accountId=${a}`]],
      [listTransactions, (a) => ['GET', `/accounts/${a}/transactions`]],
      [getHoldings, (a) => ['GET', `/accounts/${a}/holdings`]],
      [createPayment, (a) => ['POST', '/payments', { accountId: a, amount: '1.00' }]],
      [listNotifications, (a) => ['GET', `/notifications?accountId=${a}`]],
      [
        invest,
        (a) => [
          'POST',
          `/strategies/${strategy}/orders`,
          { destinationAccountId: a, amount: '10.00', paymentId: payment },
        ],
      ],
    ];
    for (const [action, request] of routes) {
      const [method, path, body] = request('102');
      const before = await served(action);
      const refused = await send(method, path, body, alice);
      assert.equal(refused.status, 403, `${method} ${path}`);
      assert.equal(refused.body.error?.code, 'FORBIDDEN', `${method} ${path}`);
      assert.equal(await served(action), before, `${method} ${path}: ${action.name} was not called`);

      // The same request for her own account reaches the service: the count above does count it.
      const [ownMethod, ownPath, ownBody] = request('101');
      await send(ownMethod, ownPath, ownBody, alice);
      assert.equal(await served(action), before + 1, `${ownMethod} ${ownPath}: ${action.name} was called once`);
    }
  });

  it('GET /accounts: a customer sees their own accounts, an admin every one', async () => {
    const mine = await send('GET', '/accounts', undefined, await login('bob', 'bob-password'));
    assert.equal(mine.status, 200);
    assert.deepEqual(mine.body, [{ id: '102', name: "Bob's investments", cash: '2500.00' }]);
    const all = await send('GET', '/accounts', undefined, await login('admin', 'admin-password'));
    assert.deepEqual(
      (all.body as unknown as { id: string }[]).map((a) => a.id),
      ['101', '102'],
    );
    assert.equal((await send('GET', '/accounts')).status, 401);
  });

  it('the API is described at /openapi.json', async () => {
    const doc = await send('GET', '/openapi.json');
    assert.equal(doc.status, 200);
    assert.deepEqual(Object.keys(doc.body.paths as object).sort(), [
      '/accounts',
      '/accounts/{accountId}/holdings',
      '/accounts/{accountId}/transactions',
      '/alerts',
      '/auth/token',
      '/health',
      '/investments/{id}',
      '/notifications',
      '/orders',
      '/orders/{id}',
      '/orders/{id}/cancel',
      '/payments',
      '/payments/{id}',
      '/prices',
      '/prices/{symbol}',
      '/reports/fees',
      '/shares/buy',
      '/shares/sell',
      '/strategies',
      '/strategies/{id}',
      '/strategies/{strategyId}/orders',
    ]);
  });
});
