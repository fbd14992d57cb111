import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type SagaBoundaryEvent, sql } from '@chassis/data';
import { requestJson, waitUntil } from '@chassis/testing';
import { shopServiceNames } from '../src/services.ts';
import { createShopGateway, type Shop, startShop } from '../src/system.ts';
import { checkPaymentsMatchOrders, describeShopFlow } from './flow.ts';

/**
 * The flow on the embedded default: every service but reviews on one node (memory transport, PGlite),
 * reviews on a second node on the same memory broker, so the BFF test can take it down and back.
 */
const allButReviews = shopServiceNames()
  .filter((name) => name !== 'shop-reviews')
  .join(',');
const env = (services: string) => ({
  CHASSIS_TRANSPORT: 'memory',
  SERVICES: services,
  OPS_PORT: 'off',
  // A fixed port lies in Linux's ephemeral range (32768–60999): any outgoing connection may hold it.
  GRPC_PORT: '0',
  LOG_LEVEL: 'silent',
});

/** The saga crashes (abandons its instance as a killed process would) at the boundaries armed here. */
const crashes: { boundary: string; step: string }[] = [];
function crashWhenArmed(event: SagaBoundaryEvent): void {
  const armed = crashes.findIndex((c) => c.boundary === event.boundary && c.step === event.step);
  if (armed === -1) return;
  crashes.splice(armed, 1);
  throw new Error(`test crash at ${event.boundary} of ${event.step}`);
}

let main: Shop;
let reviews: Shop | undefined;
const startReviews = () => startShop({ port: false, databaseUrl: 'pglite://memory', env: env('shop-reviews') });

describeShopFlow('embedded (one process, memory transport, PGlite; reviews on a node of its own)', async () => {
  main = await startShop({
    port: 0,
    databaseUrl: 'pglite://memory',
    env: env(allButReviews),
    // A crashed saga's lease lapses soon and the sweep takes it up again (the crash tests below).
    services: { orders: { sagas: { leaseMs: 1000, sweepMs: 200, onBoundary: crashWhenArmed } } },
  });
  reviews = await startReviews();
  return {
    url: main.url!,
    grpcAddress: `127.0.0.1:${main.grpcPort}`,
    database: main.database,
    metrics: () => main.node.metrics.registry.metrics(),
    reviews: {
      stop: async () => {
        await reviews?.stop();
        reviews = undefined;
      },
      start: async () => {
        reviews ??= await startReviews();
      },
    },
    stop: async () => {
      // The node of the flow stays up for the tests below; they stop it.
    },
  };
});

describe('Shop on the embedded default: a crash between the saga’s steps, rate limits', () => {
  let token: string;
  before(async () => {
    const login = await requestJson(main.url!, 'POST', '/api/v1/login', {
      username: 'admin',
      password: 'admin-password',
    });
    token = String(login.body.token);
  });
  after(async () => {
    await reviews?.stop();
    await main?.stop();
  });

  for (const crash of [
    { boundary: 'step_ran', step: 'charge', when: 'after the payment is taken, before the saga records it' },
    { boundary: 'step_completed', step: 'charge', when: 'after the charge is recorded, before the order is concluded' },
  ]) {
    it(`confirms the order, charged once, when the saga crashes ${crash.when}`, async () => {
      crashes.push({ boundary: crash.boundary, step: crash.step });
      const placed = await requestJson(
        main.url!,
        'POST',
        '/api/v1/orders',
        { items: [{ productId: '10000000-0000-4000-8000-000000000002', quantity: 1 }] },
        token,
      );
      assert.equal(placed.status, 202);
      let status = 'pending';
      await waitUntil(
        async () => {
          const order = await requestJson(main.url!, 'GET', `/api/v1/orders/${placed.body.id}`, undefined, token);
          status = String(order.body.status);
          return status !== 'pending';
        },
        { timeoutMs: 15_000, what: 'the crashed saga to be resumed' },
      );
      assert.equal(crashes.length, 0, 'the crash happened');
      assert.equal(status, 'confirmed');
      const payment = await requestJson(main.url!, 'GET', `/api/v1/orders/${placed.body.id}/payment`, undefined, token);
      assert.equal(payment.body.status, 'charged');
      await checkPaymentsMatchOrders(main.database);
    });
  }

  it('searches products by an index (the GIN index on their words), not by a scan', async () => {
    const plan = await main.database.kysely.transaction().execute(async (trx) => {
      // The table is small: without this the planner would rightly prefer a scan.
      await sql`set local enable_seqscan = off`.execute(trx);
      return sql<{ 'QUERY PLAN': string }>`
        explain select id from "shop-products".products where search @@ to_tsquery('simple', 'desk:*')`.execute(trx);
    });
    assert.match(plan.rows.map((row) => row['QUERY PLAN']).join('\n'), /products_search/);
  });

  it('caches product reads at the gateway for 2 s', async () => {
    const path = '/api/v1/products/10000000-0000-4000-8000-000000000003';
    const price = async () => (await requestJson(main.url!, 'GET', path)).body.price;
    const first = await price();
    // Behind the service's back, so that only a cached answer can still say the old price.
    await sql`update "shop-products".products set price_cents = price_cents + 100
      where id = '10000000-0000-4000-8000-000000000003'`.execute(main.database.kysely);
    assert.equal(await price(), first);
    await waitUntil(async () => (await price()) === Number(first) + 1, {
      timeoutMs: 5000,
      what: 'the cache to expire',
    });
  });

  it('rate-limits each caller: 429 with Retry-After past the limit', async () => {
    const limited = await createShopGateway(main.node, main.secret, 3);
    try {
      const url = await limited.listen({ port: 0, host: '127.0.0.1' });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await requestJson(url, 'GET', '/api/v1/products')).status);
      assert.deepEqual(statuses, [200, 200, 200, 429]);
      const refused = await fetch(`${url}/api/v1/products`);
      assert.ok(refused.headers.get('retry-after'));
    } finally {
      await limited.close();
    }
  });
});
