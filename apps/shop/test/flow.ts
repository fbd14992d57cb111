import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Database, sql } from '@chassis/data';
import { requestJson, waitUntil } from '@chassis/testing';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { USERS_PROTO } from '../src/grpc.ts';
import { shopMonitoringMetricNames } from './monitoring.ts';

/** A running Shop, however it is deployed, as the flow sees it. */
export interface ShopUnderTest {
  url: string;
  /** The database the services keep their tables in (to check that no payment is left without its order). */
  database: Database;
  /** The Prometheus text of the node serving the gateway. */
  metrics(): Promise<string>;
  /** `host:port` of gRPC `UserService`. */
  grpcAddress: string;
  /** Takes the reviews service down (no instance serving) and brings it back, the rest running on. */
  reviews: { stop(): Promise<void>; start(): Promise<void> };
  stop(): Promise<void>;
}

type Answer = Record<string, unknown> & {
  error?: { code: string; message: string; details?: { fields?: { path: string }[] } };
};

interface OrderBody {
  id: string;
  status: string;
  total: number;
  paymentId: string | null;
  reason: string | null;
}

/** Names unique to this run: the catalogue and users outlive a run in the embedded default's folder. */
const run = randomUUID().slice(0, 8);

/**
 * The issue's "shows it is done" flow through HTTP — sign up, log in, search, review, order (confirmed),
 * a big order (on hold, nothing charged), a payment failure (canceled, voided), the BFFs with a part
 * down — with every bad-input rule, the 401/403 rules, and after all of it the saga's promise checked
 * in the database: no payment is charged without its order confirmed, and no order is confirmed
 * without its payment charged.
 */
export function describeShopFlow(topology: string, start: () => Promise<ShopUnderTest>, skip: false | string = false) {
  describe(`Shop through HTTP: ${topology}`, { skip }, () => {
    let shop: ShopUnderTest;
    const tokens: Record<string, string> = {};
    const ids: Record<string, string> = {};
    const products: Record<string, string> = {};

    const send = (method: string, path: string, body?: unknown, token?: string) =>
      requestJson<Answer>(shop.url, method, path, body, token);
    const fieldsOf = (answer: { body: Answer }) => (answer.body.error?.details?.fields ?? []).map((f) => f.path);
    const untilSettled = async (orderId: string, token: string) => {
      let order: OrderBody | undefined;
      await waitUntil(
        async () => {
          order = (await send('GET', `/api/v1/orders/${orderId}`, undefined, token)).body as unknown as OrderBody;
          return order.status !== 'pending';
        },
        { timeoutMs: 20_000, what: `order ${orderId} to leave pending` },
      );
      return order!;
    };

    before(async () => {
      shop = await start();
      const admin = await send('POST', '/api/v1/login', { username: 'admin', password: 'admin-password' });
      assert.equal(admin.status, 200, JSON.stringify(admin.body));
      tokens.admin = String(admin.body.token);
    });
    after(() => shop?.stop());

    it('signs up users, without ever answering a password; refuses bad and duplicate sign-ups naming the fields', async () => {
      for (const who of ['ada', 'bob']) {
        const created = await send('POST', '/api/v1/users', {
          username: `${who}-${run}`,
          name: who.toUpperCase(),
          email: `${who}-${run}@Example.com`,
          password: `${who}-password`,
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        assert.equal(created.headers.get('location'), `/api/v1/users/${created.body.id}`);
        assert.equal(created.body.email, `${who}-${run}@example.com`);
        assert.ok(!JSON.stringify(created.body).includes('password'));
        ids[who] = String(created.body.id);
      }
      const duplicate = await send('POST', '/api/v1/users', {
        username: `ADA-${run}`,
        name: 'Another',
        email: `ada-${run}@example.com`,
        password: 'long-enough',
      });
      assert.equal(duplicate.status, 409);
      assert.equal(duplicate.body.error?.code, 'USER_EXISTS');
      assert.deepEqual(fieldsOf(duplicate).sort(), ['email', 'username']);
      const bad = await send('POST', '/api/v1/users', { username: 'x', name: '', email: 'nope', password: 'short' });
      assert.equal(bad.status, 400);
      assert.deepEqual(fieldsOf(bad).sort(), ['email', 'name', 'password', 'username']);
    });

    it('logs in with a JWT that expires (401 on bad credentials); reads users (401 without a token, 404 USER_NOT_FOUND)', async () => {
      for (const who of ['ada', 'bob']) {
        // Credentials reach auth by the user_registered event, through the outbox: moments after the sign-up.
        await waitUntil(
          async () => {
            const login = await send('POST', '/api/v1/login', {
              username: `${who}-${run}`,
              password: `${who}-password`,
            });
            if (login.status === 200) tokens[who] = String(login.body.token);
            return login.status === 200;
          },
          { timeoutMs: 10_000, what: `${who} to be able to log in` },
        );
      }
      const payload = JSON.parse(Buffer.from(tokens.ada!.split('.')[1]!, 'base64url').toString());
      assert.equal(payload.sub, ids.ada);
      assert.ok(payload.exp > Date.now() / 1000 && payload.exp <= Date.now() / 1000 + 3600 + 5);
      const wrong = await send('POST', '/api/v1/login', { username: `ada-${run}`, password: 'wrong-password' });
      assert.equal(wrong.status, 401);
      assert.equal((await send('POST', '/api/v1/login', { username: 'nobody', password: 'x' })).status, 401);

      const me = await send('GET', `/api/v1/users/${ids.ada}`, undefined, tokens.ada);
      assert.equal(me.status, 200);
      assert.equal(me.body.username, `ada-${run}`);
      assert.ok(!JSON.stringify(me.body).includes('password'));
      assert.equal((await send('GET', `/api/v1/users/${ids.ada}`)).status, 401);
      assert.equal((await send('GET', `/api/v1/users/${ids.ada}`, undefined, 'not.a.jwt')).status, 401);
      const missing = await send('GET', `/api/v1/users/${randomUUID()}`, undefined, tokens.ada);
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error?.code, 'USER_NOT_FOUND');
      assert.equal((await send('GET', '/api/v1/users/not-a-uuid', undefined, tokens.ada)).status, 400);
    });

    it('answers gRPC UserService.GetUser to a real gRPC client, with the statuses of its errors', async () => {
      const client = userServiceClient(shop.grpcAddress);
      try {
        const user = await getUserOverGrpc(client, ids.ada!, tokens.ada);
        assert.deepEqual(user, { id: ids.ada, name: 'ADA', email: `ada-${run}@example.com` });
        const statusOf = (request: Promise<unknown>) =>
          request.then(
            () => 'OK',
            (error: { code: number }) => grpc.status[error.code],
          );
        assert.equal(await statusOf(getUserOverGrpc(client, randomUUID(), tokens.ada)), 'NOT_FOUND');
        assert.equal(await statusOf(getUserOverGrpc(client, ids.ada!, undefined)), 'UNAUTHENTICATED');
        assert.equal(await statusOf(getUserOverGrpc(client, 'not-a-uuid', tokens.ada)), 'INVALID_ARGUMENT');
      } finally {
        client.close();
      }
    });

    it('lets admins add products (403 for a customer, 400 for a price with three decimals) and searches them case-insensitively', async () => {
      const product = (name: string, price: number) => ({ name: `${name} ${run}`, description: `The ${name}`, price });
      const refused = await send('POST', '/api/v1/products', product('Teapot', 20), tokens.ada);
      assert.equal(refused.status, 403);
      assert.equal((await send('POST', '/api/v1/products', product('Teapot', 20))).status, 401);
      const badPrice = await send('POST', '/api/v1/products', product('Teapot', 19.999), tokens.admin);
      assert.equal(badPrice.status, 400);
      assert.deepEqual(fieldsOf(badPrice), ['price']);
      const negative = await send('POST', '/api/v1/products', product('Teapot', -1), tokens.admin);
      assert.deepEqual(fieldsOf(negative), ['price']);
      for (const [key, name, price] of [
        ['teapot', 'Teapot', 19.99],
        ['cups', 'Cups', 12.5],
        ['kettle', 'Kettle', 45],
        ['piano', 'Grand piano', 6000],
      ] as const) {
        const created = await send('POST', '/api/v1/products', product(name, price), tokens.admin);
        assert.equal(created.status, 201, JSON.stringify(created.body));
        assert.equal(created.body.price, price);
        products[key] = String(created.body.id);
      }
      const found = await send('GET', `/api/v1/products?q=${encodeURIComponent(`TEAP ${run.toUpperCase()}`)}`);
      assert.equal(found.status, 200);
      assert.deepEqual(
        (found.body.products as { id: string }[]).map((p) => p.id),
        [products.teapot],
      );
      const all = await send('GET', `/api/v1/products?q=${run}`);
      assert.equal((all.body.products as unknown[]).length, 4);
      const odd = await send('GET', `/api/v1/products?q=${encodeURIComponent("'&|!:*()")}`);
      assert.equal(odd.status, 200, 'tsquery syntax in q is not an error');
      assert.equal((await send('GET', `/api/v1/products/${products.kettle}`)).body.name, `Kettle ${run}`);
      const none = await send('GET', `/api/v1/products/${randomUUID()}`);
      assert.equal(none.status, 404);
      assert.equal(none.body.error?.code, 'PRODUCT_NOT_FOUND');
    });

    it('takes reviews of products that exist', async () => {
      const path = `/api/v1/products/${products.teapot}/reviews`;
      const added = await send('POST', path, { rating: 5, comment: 'Pours well' }, tokens.ada);
      assert.equal(added.status, 201, JSON.stringify(added.body));
      assert.equal(added.body.username, `ada-${run}`);
      const bad = await send('POST', path, { rating: 6, comment: '' }, tokens.ada);
      assert.equal(bad.status, 400);
      assert.deepEqual(fieldsOf(bad).sort(), ['comment', 'rating']);
      const unknown = await send(
        'POST',
        `/api/v1/products/${randomUUID()}/reviews`,
        { rating: 3, comment: 'Hm' },
        tokens.ada,
      );
      assert.equal(unknown.status, 404);
      assert.equal((await send('POST', path, { rating: 3, comment: 'Hm' })).status, 401);
      const listed = await send('GET', path);
      assert.deepEqual(
        (listed.body.reviews as { comment: string }[]).map((r) => r.comment),
        ['Pours well'],
      );
    });

    it('confirms an order once its payment is charged (202 pending first); 403 for another user’s order', async () => {
      const placed = await send(
        'POST',
        '/api/v1/orders',
        {
          items: [
            { productId: products.teapot, quantity: 1 },
            { productId: products.cups, quantity: 4 },
          ],
        },
        tokens.ada,
      );
      assert.equal(placed.status, 202, JSON.stringify(placed.body));
      assert.deepEqual(Object.keys(placed.body).sort(), ['id', 'status']);
      assert.equal(placed.body.status, 'pending');
      const order = await untilSettled(String(placed.body.id), tokens.ada!);
      assert.equal(order.status, 'confirmed');
      assert.equal(order.total, 69.99);
      const payment = await send('GET', `/api/v1/orders/${order.id}/payment`, undefined, tokens.ada);
      assert.equal(payment.body.status, 'charged');
      assert.equal(payment.body.amount, 69.99);
      assert.equal(payment.body.id, order.paymentId);

      const theirs = await send('GET', `/api/v1/orders/${order.id}`, undefined, tokens.bob);
      assert.equal(theirs.status, 403);
      assert.equal((await send('GET', `/api/v1/users/${ids.ada}/orders`, undefined, tokens.bob)).status, 403);
      assert.equal((await send('GET', `/api/v1/users/${ids.ada}/recommendations`, undefined, tokens.bob)).status, 403);
      assert.equal((await send('GET', `/api/v1/orders/${order.id}/payment`, undefined, tokens.bob)).status, 404);
      const history = await send('GET', `/api/v1/users/${ids.ada}/orders`, undefined, tokens.ada);
      assert.deepEqual(
        (history.body.orders as OrderBody[]).map((o) => o.id),
        [order.id],
      );
      assert.equal((await send('GET', `/api/v1/users/${ids.ada}/orders`, undefined, tokens.admin)).status, 200);
    });

    it('holds an order over 10,000.00 for review: on hold, nothing charged', async () => {
      const placed = await send(
        'POST',
        '/api/v1/orders',
        { items: [{ productId: products.piano, quantity: 2 }] },
        tokens.bob,
      );
      assert.equal(placed.status, 202);
      const order = await untilSettled(String(placed.body.id), tokens.bob!);
      assert.equal(order.status, 'on_hold');
      assert.equal(order.total, 12000);
      const payment = await send('GET', `/api/v1/orders/${order.id}/payment`, undefined, tokens.bob);
      assert.equal(payment.body.status, 'held');
      assert.equal(payment.body.charged, false);
    });

    it('lets an admin approve a held order (charged, confirmed) or reject one (voided, canceled), once', async () => {
      const held = async () => {
        const placed = await send(
          'POST',
          '/api/v1/orders',
          { items: [{ productId: products.piano, quantity: 2 }] },
          tokens.bob,
        );
        const order = await untilSettled(String(placed.body.id), tokens.bob!);
        assert.equal(order.status, 'on_hold');
        return order.id;
      };
      const [approved, rejected] = [await held(), await held()];
      const review = (id: string, decision: unknown, token = tokens.admin) =>
        send('POST', `/api/v1/orders/${id}/review`, { decision }, token);
      assert.equal((await review(approved, 'approve', tokens.bob)).status, 403);
      assert.deepEqual(fieldsOf(await review(approved, 'maybe')), ['decision']);
      const accepted = await review(approved, 'approve');
      assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
      assert.equal((await review(rejected, 'reject')).status, 202);
      const again = await review(approved, 'reject');
      assert.equal(again.status, 409);
      assert.equal(again.body.error?.code, 'ORDER_NOT_ON_HOLD');
      const settled = async (id: string, status: string) => {
        let order: OrderBody | undefined;
        await waitUntil(
          async () => {
            order = (await send('GET', `/api/v1/orders/${id}`, undefined, tokens.bob)).body as unknown as OrderBody;
            return order.status === status;
          },
          { timeoutMs: 20_000, what: `order ${id} to be ${status}` },
        );
        return (await send('GET', `/api/v1/orders/${id}/payment`, undefined, tokens.bob)).body;
      };
      const charged = await settled(approved, 'confirmed');
      assert.equal(charged.status, 'charged');
      assert.equal(charged.charged, true);
      const voided = await settled(rejected, 'canceled');
      assert.equal(voided.status, 'voided');
      assert.equal(voided.charged, false);
      assert.equal((await review(rejected, 'approve')).status, 409);
      const adasOrders = await send('GET', `/api/v1/users/${ids.ada}/orders`, undefined, tokens.ada);
      const confirmedId = (adasOrders.body.orders as OrderBody[])[0]!.id;
      assert.equal((await review(confirmedId, 'approve')).status, 409);
      assert.equal((await review(randomUUID(), 'approve')).status, 404);
    });

    it('cancels an order whose card is declined, its payment voided and never charged', async () => {
      const placed = await send(
        'POST',
        '/api/v1/orders',
        { items: [{ productId: products.kettle, quantity: 1 }], card: '4000000000000002' },
        tokens.bob,
      );
      assert.equal(placed.status, 202);
      const order = await untilSettled(String(placed.body.id), tokens.bob!);
      assert.equal(order.status, 'canceled');
      assert.match(String(order.reason), /declined|refused/);
      const payment = await send('GET', `/api/v1/orders/${order.id}/payment`, undefined, tokens.bob);
      assert.equal(payment.body.status, 'voided');
      assert.equal(payment.body.charged, false);
    });

    it('refuses bad orders with the fields named: empty, negative or fractional quantities, unknown or repeated products', async () => {
      const order = (items: unknown) => send('POST', '/api/v1/orders', { items }, tokens.ada);
      const empty = await order([]);
      assert.equal(empty.status, 400);
      assert.deepEqual(fieldsOf(empty), ['items']);
      const quantities = await order([
        { productId: products.teapot, quantity: -1 },
        { productId: products.cups, quantity: 1.5 },
        { productId: products.kettle, quantity: 0 },
      ]);
      assert.equal(quantities.status, 400);
      assert.deepEqual(fieldsOf(quantities), ['items.0.quantity', 'items.1.quantity', 'items.2.quantity']);
      const unknown = await order([
        { productId: products.teapot, quantity: 1 },
        { productId: randomUUID(), quantity: 1 },
      ]);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error?.code, 'PRODUCT_NOT_FOUND');
      assert.deepEqual(fieldsOf(unknown), ['items.1.productId']);
      const twice = await order([
        { productId: products.teapot, quantity: 1 },
        { productId: products.teapot, quantity: 2 },
      ]);
      assert.equal(twice.status, 400);
      assert.deepEqual(fieldsOf(twice), ['items.1.productId']);
      assert.equal((await order([{ productId: 'nope', quantity: 1 }])).status, 400);
      assert.equal((await send('POST', '/api/v1/orders', { items: [] })).status, 401);
    });

    it('recommends what others bought with what a user bought, from the order history', async () => {
      // bob buys cups and a kettle; ada has bought cups: the kettle is recommended to her.
      const placed = await send(
        'POST',
        '/api/v1/orders',
        {
          items: [
            { productId: products.cups, quantity: 1 },
            { productId: products.kettle, quantity: 1 },
          ],
        },
        tokens.bob,
      );
      assert.equal((await untilSettled(String(placed.body.id), tokens.bob!)).status, 'confirmed');
      await waitUntil(
        async () => {
          const answer = await send('GET', `/api/v1/users/${ids.ada}/recommendations`, undefined, tokens.ada);
          assert.equal(answer.status, 200, JSON.stringify(answer.body));
          const recommended = answer.body.products as { productId: string; reason: string }[];
          return recommended.some((r) => r.productId === products.kettle && r.reason === 'bought_together');
        },
        { timeoutMs: 10_000, what: 'the kettle to be recommended to ada' },
      );
    });

    it('composes the BFFs in parallel, and answers partially, naming the missing part, while reviews are down', async () => {
      const mobile = await send('GET', `/mobile/products?q=${run}`);
      assert.equal(mobile.status, 200);
      assert.equal((mobile.body.products as unknown[]).length, 4);
      assert.ok((mobile.body.reviews as unknown[]).length >= 1);
      assert.equal(mobile.body.partial, false);
      assert.equal((await send('GET', '/web/products')).status, 401);
      const web = await send('GET', `/web/products?q=${run}`, undefined, tokens.ada);
      assert.equal(web.status, 200);
      assert.deepEqual(Object.keys(web.body).sort(), [
        'errors',
        'missing',
        'partial',
        'products',
        'recommendations',
        'reviews',
      ]);
      assert.equal(web.body.partial, false);

      await shop.reviews.stop();
      try {
        for (const [path, token] of [
          ['/mobile/products', undefined],
          ['/web/products', tokens.ada],
        ] as const) {
          const partial = await send('GET', path, undefined, token);
          assert.equal(partial.status, 200, JSON.stringify(partial.body));
          assert.equal(partial.body.partial, true);
          assert.deepEqual(partial.body.missing, ['reviews']);
          assert.equal(partial.body.reviews, null);
          assert.ok(Array.isArray(partial.body.products));
        }
      } finally {
        await shop.reviews.start();
      }
    });

    it('counts requests in node_requests_total beside the chassis’s own metrics', async () => {
      const text = await shop.metrics();
      assert.match(text, /node_requests_total\{method="POST",route="\/api\/v1\/orders",status="202"\} \d+/);
      assert.match(text, /chassis_http_server_duration_seconds_count/);
    });

    it('reports orders and payments by status, as the tables hold them (shop_orders, shop_payments)', async () => {
      const text = await shop.metrics();
      const gauge = (name: string, status: string) =>
        Number(new RegExp(`^${name}\\{status="${status}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
      const orders = await sql<{ status: string; n: number }>`
        select status, count(*)::int as n from "shop-orders".orders group by status`.execute(shop.database.kysely);
      const payments = await sql<{ status: string; n: number }>`
        select status, count(*)::int as n from "shop-payments".payments group by status`.execute(shop.database.kysely);
      for (const status of ['pending', 'confirmed', 'on_hold', 'canceled']) {
        const n = orders.rows.find((row) => row.status === status)?.n ?? 0;
        assert.equal(gauge('shop_orders', status), n, `shop_orders{status="${status}"}`);
      }
      for (const status of ['charged', 'held', 'declined', 'voided']) {
        const n = payments.rows.find((row) => row.status === status)?.n ?? 0;
        assert.equal(gauge('shop_payments', status), n, `shop_payments{status="${status}"}`);
      }
      assert.ok(gauge('shop_orders', 'confirmed') > 0 && gauge('shop_payments', 'held') > 0);
      assert.match(text, /chassis_saga_instances\{service="shop-orders",saga="[\w-]+",status="completed"\}/);
      // What the Shop's dashboard and alerts (deploy/monitoring/shop) read is exported.
      for (const name of shopMonitoringMetricNames()) assert.match(text, new RegExp(`^${name}\\{`, 'm'), name);
    });

    it('leaves no payment charged without its order confirmed, and no order confirmed without its charge', async () => {
      await checkPaymentsMatchOrders(shop.database);
    });
  });
}

type UserServiceClient = grpc.Client & {
  GetUser(
    request: { id: string },
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response: unknown) => void,
  ): void;
};

/** A plain @grpc/grpc-js client of `UserService`, as any gRPC program would make one from the .proto. */
function userServiceClient(address: string): UserServiceClient {
  const definition = loadSync(fileURLToPath(USERS_PROTO), { keepCase: true });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    UserService: new (address: string, credentials: grpc.ChannelCredentials) => UserServiceClient;
  };
  return new loaded.UserService(address, grpc.credentials.createInsecure());
}

function getUserOverGrpc(client: UserServiceClient, id: string, token: string | undefined): Promise<unknown> {
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    client.GetUser({ id }, metadata, { deadline: Date.now() + 5000 }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

/** The saga's promise, in the tables: a charge for every confirmed order and none for any other. */
export async function checkPaymentsMatchOrders(database: Database): Promise<void> {
  // Sagas still running may hold a charge not yet concluded: wait for every order to leave pending.
  await waitUntil(
    async () => {
      const pending = await sql<{ n: number }>`
        select count(*)::int as n from "shop-orders".orders where status = 'pending'`.execute(database.kysely);
      return pending.rows[0]!.n === 0;
    },
    { timeoutMs: 20_000, what: 'every order to leave pending' },
  );
  const mismatched = await sql<{ order_id: string; order_status: string | null; payment_status: string | null }>`
    select coalesce(o.id, p.order_id) as order_id, o.status as order_status, p.status as payment_status
    from "shop-orders".orders o
    full join "shop-payments".payments p on p.order_id = o.id
    where (p.status = 'charged' and o.status is distinct from 'confirmed')
       or (o.status = 'confirmed' and p.status is distinct from 'charged')
       or (o.status = 'on_hold' and p.status is distinct from 'held')`.execute(database.kysely);
  assert.deepEqual(mismatched.rows, []);
}
