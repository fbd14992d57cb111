import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signToken } from '@chassis/core';
import { errorBodySchema, route } from '@chassis/gateway';
import { waitUntil } from '@chassis/testing';
import { type BankApi, bankRoutes, getPrice, SECRET, startBankApi, token } from './bank-api.ts';

function errorOf(body: string) {
  const parsed = errorBodySchema.safeParse(JSON.parse(body));
  assert.ok(parsed.success, `the error body has the error shape: ${body}`);
  return parsed.data.error;
}

describe('gateway: routes to actions', () => {
  let api: BankApi;
  let alice: string;
  before(async () => {
    api = await startBankApi();
    alice = await token.alice();
  });
  after(() => api.close());
  const auth = (t: string) => ({ authorization: `Bearer ${t}` });

  it('POST /shares/sell answers 202 with Location and the request id; GET /orders/:id finds it', async () => {
    const sold = await api.gateway.app.inject({
      method: 'POST',
      url: '/shares/sell',
      headers: { ...auth(alice), 'x-request-id': 'req-sell-1' },
      payload: { accountId: '101', symbol: 'BHP', quantity: 10 },
    });
    assert.equal(sold.statusCode, 202, sold.body);
    const body = sold.json();
    assert.match(body.ok, /^sell order o-\d+ placed$/);
    assert.equal(body.status, 'created');
    assert.equal(sold.headers.location, `/orders/${body.orderId}`);
    assert.equal(sold.headers['x-request-id'], 'req-sell-1');

    const order = await api.gateway.app.inject({ method: 'GET', url: `/orders/${body.orderId}`, headers: auth(alice) });
    assert.equal(order.statusCode, 200);
    assert.deepEqual(order.json(), {
      id: body.orderId,
      accountId: '101',
      symbol: 'BHP',
      quantity: 10,
      status: 'created',
    });
    assert.match(String(order.headers['x-request-id']), /^[0-9a-f-]{36}$/, 'a request id is generated when absent');
  });

  it('query strings are read as the contract expects; bad input is a 400 naming every field, the action never runs', async () => {
    const page = await api.gateway.app.inject({
      method: 'GET',
      url: '/accounts/101/transactions?page=2&size=5',
      headers: auth(alice),
    });
    assert.equal(page.statusCode, 200, page.body);
    assert.deepEqual(page.json(), { accountId: '101', page: 2, size: 5, entries: ['entry-2'] });

    const sellsBefore = api.state.sells;
    const bad = await api.gateway.app.inject({
      method: 'POST',
      url: '/shares/sell',
      headers: auth(alice),
      payload: { accountId: '101', symbol: 'bhp', quantity: -3 },
    });
    assert.equal(bad.statusCode, 400);
    const error = errorOf(bad.body);
    assert.equal(error.code, 'VALIDATION');
    const fields = (error.details as { fields: { path: string }[] }).fields.map((f) => f.path).sort();
    assert.deepEqual(fields, ['quantity', 'symbol']);
    assert.equal(api.state.sells, sellsBefore, 'the action never ran');

    const badQuery = await api.gateway.app.inject({
      method: 'GET',
      url: '/accounts/101/transactions?page=zero',
      headers: auth(alice),
    });
    assert.equal(badQuery.statusCode, 400);
    assert.deepEqual(
      (errorOf(badQuery.body).details as { fields: { path: string }[] }).fields.map((f) => f.path),
      ['page'],
    );
  });

  it('domain and catalog errors keep their status and code: 409, 404; unknown routes are 404 in the error shape', async () => {
    const tooMany = await api.gateway.app.inject({
      method: 'POST',
      url: '/shares/sell',
      headers: auth(alice),
      payload: { accountId: '101', symbol: 'GOOG', quantity: 5000 },
    });
    assert.equal(tooMany.statusCode, 409);
    const error = errorOf(tooMany.body);
    assert.equal(error.code, 'INSUFFICIENT_SHARES');
    assert.deepEqual(error.details, { free: 103 });
    assert.equal(error.requestId, tooMany.headers['x-request-id']);

    const missing = await api.gateway.app.inject({ method: 'GET', url: '/orders/nope', headers: auth(alice) });
    assert.equal(missing.statusCode, 404);
    assert.equal(errorOf(missing.body).code, 'NOT_FOUND');

    const noRoute = await api.gateway.app.inject({ method: 'GET', url: '/no/such/route' });
    assert.equal(noRoute.statusCode, 404);
    assert.match(errorOf(noRoute.body).message, /No route GET \/no\/such\/route/);
  });

  it('bodies: not JSON is 400, another content type is 415, too large is 413 — never a 500', async () => {
    const notJson = await api.gateway.app.inject({
      method: 'POST',
      url: '/shares/sell',
      headers: { ...auth(alice), 'content-type': 'application/json' },
      payload: '{"accountId": "101", ',
    });
    assert.equal(notJson.statusCode, 400, notJson.body);
    assert.equal(errorOf(notJson.body).code, 'VALIDATION');

    const text = await api.gateway.app.inject({
      method: 'POST',
      url: '/shares/sell',
      headers: { ...auth(alice), 'content-type': 'text/plain' },
      payload: 'sell 10 BHP',
    });
    assert.equal(text.statusCode, 415, text.body);
    assert.equal(errorOf(text.body).code, 'UNSUPPORTED_MEDIA_TYPE');

    const huge = await api.gateway.app.inject({
      method: 'POST',
      url: '/shares/sell',
      headers: { ...auth(alice), 'content-type': 'application/json' },
      payload: JSON.stringify({ accountId: '101', symbol: 'BHP', quantity: 1, pad: 'x'.repeat(2 * 1024 * 1024) }),
    });
    assert.equal(huge.statusCode, 413, huge.body);
    assert.equal(errorOf(huge.body).code, 'PAYLOAD_TOO_LARGE');

    const array = await api.gateway.app.inject({
      method: 'POST',
      url: '/shares/sell',
      headers: auth(alice),
      payload: [1, 2, 3],
    });
    assert.equal(array.statusCode, 400);
  });

  it('deadlines: Request-Timeout bounds the call and aborts the handler; a bad header is a 400; traceparent carries on', async () => {
    const started = Date.now();
    const slow = await api.gateway.app.inject({
      method: 'GET',
      url: '/reports/slow?ms=10000',
      headers: { 'request-timeout': '0.2' },
    });
    const took = Date.now() - started;
    // A 504 for a 10 s report is a deadline at work; that it came well before the default 5 s deadline
    // shows it was this header's, with seconds of room for a loaded machine.
    assert.equal(slow.statusCode, 504, slow.body);
    assert.equal(errorOf(slow.body).code, 'TIMEOUT');
    assert.ok(took >= 180 && took < 4000, `answered at the 0.2 s deadline (${took} ms)`);
    await waitUntil(() => api.state.aborted >= 1, { what: 'the handler’s abort signal' });

    const bad = await api.gateway.app.inject({
      method: 'GET',
      url: '/reports/slow?ms=1',
      headers: { 'request-timeout': 'soon' },
    });
    assert.equal(bad.statusCode, 400);
    assert.match(errorOf(bad.body).message, /Request-Timeout/);
    const past = await api.gateway.app.inject({
      method: 'GET',
      url: '/reports/slow?ms=1',
      headers: { 'x-deadline': String(Date.now() - 1000) },
    });
    assert.equal(past.statusCode, 504);

    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const traced = await api.gateway.app.inject({
      method: 'GET',
      url: '/reports/slow?ms=0',
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    });
    assert.equal(traced.statusCode, 200, traced.body);
    assert.equal(traced.json().traceId, traceId, 'the service works in the caller’s trace');
  });

  it('Idempotency-Key: the same key and body get the first answer once; another body is a 422', async () => {
    const send = (key: string, quantity: number) =>
      api.gateway.app.inject({
        method: 'POST',
        url: '/shares/sell',
        headers: { ...auth(alice), 'idempotency-key': key },
        payload: { accountId: '101', symbol: 'BHP', quantity },
      });
    const before = api.state.sells;
    const first = await send('sell-abc-1', 7);
    const again = await send('sell-abc-1', 7);
    assert.equal(first.statusCode, 202);
    assert.equal(again.statusCode, 202);
    assert.deepEqual(again.json(), first.json());
    assert.equal(again.headers.location, first.headers.location);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(api.state.sells, before + 1, 'sold once');

    const reused = await send('sell-abc-1', 8);
    assert.equal(reused.statusCode, 422);
    assert.equal(errorOf(reused.body).code, 'IDEMPOTENCY_KEY_REUSED');

    // A refused request is an answer too: the same retry is refused the same way, without running again.
    const refused = await send('sell-abc-2', 999_999);
    const refusedAgain = await send('sell-abc-2', 999_999);
    assert.equal(refused.statusCode, 409);
    assert.equal(refusedAgain.statusCode, 409);
    assert.equal(errorOf(refusedAgain.body).code, 'INSUFFICIENT_SHARES');
  });

  it('OpenAPI 3.1 from the routes at /openapi.json, a docs page at /docs', async () => {
    const response = await api.gateway.app.inject({ method: 'GET', url: '/openapi.json' });
    assert.equal(response.statusCode, 200);
    const doc = response.json();
    assert.equal(doc.openapi, '3.1.0');
    const sell = doc.paths['/shares/sell'].post;
    assert.equal(sell.operationId, 'orders.sellShares');
    assert.deepEqual(sell.requestBody.content['application/json'].schema.required.sort(), [
      'accountId',
      'quantity',
      'symbol',
    ]);
    assert.ok(
      sell.responses['202'].content['application/json'].schema.properties.ok,
      'the respond schema documents 202',
    );
    assert.ok(sell.responses['400'] && sell.responses['401'] && sell.responses['429']);
    const transactions = doc.paths['/accounts/{accountId}/transactions'].get;
    assert.deepEqual(
      transactions.parameters
        .filter((p: { in: string }) => p.in !== 'header')
        .map((p: { name: string; in: string }) => `${p.in}:${p.name}`),
      ['path:accountId', 'query:page', 'query:size'],
    );
    assert.deepEqual(doc.paths['/prices/{symbol}'].get.security, [], 'public routes need no token');
    const docs = await api.gateway.app.inject({ method: 'GET', url: '/docs' });
    assert.equal(docs.statusCode, 200);
    assert.match(String(docs.headers['content-type']), /text\/html/);
    assert.match(docs.body, /SimpleBank/);
  });

  it('health, and per-route metrics on the node’s registry', async () => {
    const ready = await api.gateway.app.inject({ method: 'GET', url: '/health/ready' });
    assert.equal(ready.statusCode, 200);
    assert.equal(ready.json().status, 'pass');
    const ok = await api.gateway.app.inject({ method: 'GET', url: '/health' });
    assert.ok(!Number.isNaN(Date.parse(ok.json().ok)));
    const text = await api.node.metrics.registry.metrics();
    assert.match(
      text,
      /chassis_http_server_duration_seconds_count\{method="POST",route="\/shares\/sell",status="202",outcome="ok"\} \d+/,
    );
    assert.match(
      text,
      /chassis_http_server_duration_seconds_count\{method="POST",route="\/shares\/sell",status="400",outcome="VALIDATION"\} \d+/,
    );
    assert.doesNotMatch(text, /route="\/no\/such\/route"/, 'unmatched paths do not become labels');
  });
});

describe('gateway: authentication and authorization', () => {
  let api: BankApi;
  before(async () => {
    api = await startBankApi();
  });
  after(() => api.close());
  const get = (url: string, authorization?: string) =>
    api.gateway.app.inject({ method: 'GET', url, headers: authorization ? { authorization } : {} });

  it('no token 401 (with WWW-Authenticate), bad signature 401, expired 401, malformed header 401', async () => {
    const none = await get('/accounts');
    assert.equal(none.statusCode, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer');
    assert.equal(errorOf(none.body).code, 'UNAUTHENTICATED');

    const forged = await signToken('not-the-bank-secret-but-long-enough!', { sub: 'alice', roles: ['customer'] });
    const badSignature = await get('/accounts', `Bearer ${forged}`);
    assert.equal(badSignature.statusCode, 401);
    assert.match(errorOf(badSignature.body).message, /signature/);

    const expired = await signToken(SECRET, { sub: 'alice', roles: ['customer'] }, { expiresInSeconds: -120 });
    const late = await get('/accounts', `Bearer ${expired}`);
    assert.equal(late.statusCode, 401);
    assert.match(errorOf(late.body).message, /expired/);

    assert.equal((await get('/accounts', 'Basic YWxpY2U6cHc=')).statusCode, 401);
  });

  it('a valid token reaches the services, which see the caller; public routes need none', async () => {
    const accounts = await get('/accounts', `Bearer ${await token.alice()}`);
    assert.equal(accounts.statusCode, 200);
    assert.deepEqual(accounts.json(), [{ id: '101', name: 'Alice ISA', cash: '10000.00' }]);
    assert.equal(api.state.users.at(-1), 'alice', 'the service verified the token itself');
    const price = await get('/prices/BHP');
    assert.equal(price.statusCode, 200);
    assert.deepEqual(price.json(), { symbol: 'BHP', price: '91.72' });
    // A stale token on a public route is ignored, not passed on for a service to refuse.
    const stale = await signToken(SECRET, { sub: 'alice', roles: ['customer'] }, { expiresInSeconds: -120 });
    assert.equal((await get('/prices/BHP', `Bearer ${stale}`)).statusCode, 200);
  });

  it('wrong role 403; another customer’s account 403; the admin role passes', async () => {
    const strategy = {
      name: 'Growth',
      assets: [
        { assetId: 'BHP', percentage: 60 },
        { assetId: 'GOOG', percentage: 40 },
      ],
    };
    const asCustomer = await api.gateway.app.inject({
      method: 'POST',
      url: '/strategies',
      headers: { authorization: `Bearer ${await token.alice()}` },
      payload: strategy,
    });
    assert.equal(asCustomer.statusCode, 403);
    assert.equal(errorOf(asCustomer.body).code, 'FORBIDDEN');

    const asAdmin = await api.gateway.app.inject({
      method: 'POST',
      url: '/strategies',
      headers: { authorization: `Bearer ${await token.admin()}` },
      payload: strategy,
    });
    assert.equal(asAdmin.statusCode, 201, asAdmin.body);
    assert.equal(asAdmin.json().createdById, 'admin');
    assert.equal(asAdmin.headers.location, `/strategies/${asAdmin.json().id}`);

    const sellsBefore = api.state.sells;
    const bobSellsAlices = await api.gateway.app.inject({
      method: 'POST',
      url: '/shares/sell',
      headers: { authorization: `Bearer ${await token.bob()}` },
      payload: { accountId: '101', symbol: 'BHP', quantity: 1 },
    });
    assert.equal(bobSellsAlices.statusCode, 403);
    assert.equal(api.state.sells, sellsBefore);
    const bobReadsAlices = await get('/accounts/101/transactions', `Bearer ${await token.bob()}`);
    assert.equal(bobReadsAlices.statusCode, 403);
  });
});

describe('gateway: versions and CORS', () => {
  it('serves the routes under a version prefix, and answers CORS preflights when asked to', async () => {
    const api = await startBankApi({ prefix: '/v1', cors: { origin: ['https://app.simplebank.example'] } });
    try {
      const price = await api.gateway.app.inject({ method: 'GET', url: '/v1/prices/GOOG' });
      assert.equal(price.statusCode, 200);
      assert.equal((await api.gateway.app.inject({ method: 'GET', url: '/prices/GOOG' })).statusCode, 404);
      const doc = (await api.gateway.app.inject({ method: 'GET', url: '/openapi.json' })).json();
      assert.ok(doc.paths['/v1/prices/{symbol}']);
      const preflight = await api.gateway.app.inject({
        method: 'OPTIONS',
        url: '/v1/shares/sell',
        headers: {
          origin: 'https://app.simplebank.example',
          'access-control-request-method': 'POST',
        },
      });
      assert.equal(preflight.statusCode, 204);
      assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.simplebank.example');
    } finally {
      await api.close();
    }
  });

  it('a gateway with protected routes and no verifier does not start', async () => {
    await assert.rejects(startBankApi({ auth: undefined }), /no `auth` verifier/);
  });
});

describe('gateway: a public route knows a caller who sent a valid token', () => {
  let api: BankApi;
  before(async () => {
    api = await startBankApi({
      routes: [
        ...bankRoutes,
        route.custom('GET', '/whoami', async ({ request }) => ({ caller: request.user?.subject ?? null }), {
          auth: 'public',
        }),
        // The input mapper sees the caller too: the price is asked for the symbol named after them.
        route.get('/my-price', getPrice, {
          auth: 'public',
          input: ({ user }) => ({ symbol: user ? 'GOOG' : 'BHP' }),
        }),
      ],
    });
  });
  after(() => api.close());

  const get = (url: string, authorization?: string) =>
    api.gateway.app.inject({ method: 'GET', url, headers: authorization ? { authorization } : {} });

  it('a valid token is verified and seen; none, or a bad or expired one, is an anonymous caller, never a 401', async () => {
    const alice = `Bearer ${await token.alice()}`;
    const stale = `Bearer ${await signToken(SECRET, { sub: 'alice' }, { expiresInSeconds: -120 })}`;
    assert.deepEqual((await get('/whoami', alice)).json(), { caller: 'alice' });
    for (const authorization of [undefined, stale, 'Bearer not-a-token', 'Basic YWxpY2U6cHc=']) {
      const answer = await get('/whoami', authorization);
      assert.equal(answer.statusCode, 200, `${authorization}: ${answer.body}`);
      assert.deepEqual(answer.json(), { caller: null }, String(authorization));
    }
    assert.equal((await get('/my-price', alice)).json().symbol, 'GOOG');
    assert.equal((await get('/my-price', stale)).json().symbol, 'BHP');
    assert.equal((await get('/my-price')).json().symbol, 'BHP');
  });
});
