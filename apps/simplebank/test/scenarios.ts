import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Database } from '@chassis/data';
import { waitUntil } from '@chassis/testing';
import { requestJson } from '../src/http-client.ts';
import { settleAndCheckInvariants } from './invariants.ts';

/** A running SimpleBank, however it is deployed, as the scenarios see it. */
export interface SystemUnderTest {
  /** The gateway's base URL. */
  url: string;
  /** The exchange's base URL: its `/control` turns the outage, error and reject knobs. */
  exchangeUrl: string;
  /** The database the services keep their tables in (to check the invariants). */
  database: Database;
  /** Every node's readiness report, as JSON (the market nodes say whether their breaker is open). */
  readiness(): Promise<string>;
  /** How many market instances run (each has its own breaker). */
  markets: number;
  stop(): Promise<void>;
}

type Answer = Record<string, unknown> & {
  error?: { code: string; message: string; details?: { fields: { path: string }[] } };
};
interface OrderBody {
  id: string;
  status: string;
  price: string | null;
  fee: string | null;
  reason: string | null;
  history: { status: string }[];
}

/**
 * The flows of specs/simplebank.md through the gateway over HTTP, with the invariants checked after
 * each: the same scenarios run on every topology SimpleBank supports.
 */
export function describeScenarios(
  topology: string,
  start: () => Promise<SystemUnderTest>,
  options: { skip?: false | string } = {},
) {
  describe(`SimpleBank scenarios over HTTP: ${topology}`, { skip: options.skip }, () => {
    let system: SystemUnderTest;
    const tokens: Record<string, string> = {};
    before(async () => {
      system = await start();
      for (const user of ['alice', 'bob', 'admin']) {
        const issued = await send('POST', '/auth/token', { username: user, password: `${user}-password` });
        tokens[user] = String(issued.body.access_token);
      }
    });
    after(() => system?.stop());

    const send = (method: string, path: string, body?: unknown, user?: string) =>
      requestJson<Answer>(system.url, method, path, body, user ? tokens[user] : undefined);
    const knobs = (settings: Record<string, unknown>) => requestJson(system.exchangeUrl, 'PUT', '/control', settings);
    const order = async (id: string, user = 'alice') =>
      (await send('GET', `/orders/${id}`, undefined, user)).body as unknown as OrderBody;
    /** Waits for the status; a completed order also for its fee, which the fees service adds after. */
    const untilStatus = async (id: string, status: string, user = 'alice') => {
      await waitUntil(
        async () => {
          const current = await order(id, user);
          return current.status === status && (status !== 'completed' || current.fee !== null);
        },
        { timeoutMs: 60_000, what: `order ${status}` },
      );
      return order(id, user);
    };
    const place = async (side: 'sell' | 'buy', body: Record<string, unknown>, user = 'alice') => {
      const placed = await send('POST', `/shares/${side}`, body, user);
      assert.equal(placed.status, 202, JSON.stringify(placed.body));
      return String(placed.body.orderId);
    };
    const position = async (accountId: string, symbol: string, user = 'alice') => {
      const { body } = await send('GET', `/accounts/${accountId}/transactions?size=100`, undefined, user);
      const entries = body.entries as { asset: string; amount: string }[];
      return entries.filter((e) => e.asset === symbol).reduce((sum, e) => sum + Number(e.amount), 0);
    };

    it('sell: the order completes at the exchange’s price with its fee; shares out, cash in', async () => {
      const id = await place('sell', { accountId: '101', symbol: 'GOOG', quantity: 3 });
      const done = await untilStatus(id, 'completed');
      assert.deepEqual(
        done.history.map((h) => h.status),
        ['created', 'placed', 'completed'],
      );
      assert.match(String(done.price), /^\d+\.\d{2}$/);
      assert.equal(done.fee, '1.00', '0.1% of about 100.00 is below the 1.00 minimum');
      assert.equal(await position('101', 'GOOG'), 100);
      await settleAndCheckInvariants(system.database);
    });

    it('buy: by quantity and by amount, cash reserved then spent at the fill price', async () => {
      const byQuantity = await place('buy', { accountId: '102', symbol: 'ABC', quantity: 10 }, 'bob');
      const byAmount = await place('buy', { accountId: '102', symbol: 'GOOG', amount: '200.00' }, 'bob');
      const first = await untilStatus(byQuantity, 'completed', 'bob');
      const second = await untilStatus(byAmount, 'completed', 'bob');
      assert.equal(first.fee, '1.00');
      assert.ok(Number(second.price) > 0);
      assert.equal(await position('102', 'ABC', 'bob'), 10);
      await settleAndCheckInvariants(system.database);
    });

    it('rejection: too few shares or too little cash is a 409 with the reason, and nothing is held', async () => {
      const shares = await send('POST', '/shares/sell', { accountId: '102', symbol: 'BHP', quantity: 51 }, 'bob');
      assert.equal(shares.status, 409);
      assert.equal(shares.body.error?.code, 'INSUFFICIENT_SHARES');
      const cash = await send('POST', '/shares/buy', { accountId: '102', symbol: 'BHP', amount: '1000000.00' }, 'bob');
      assert.equal(cash.status, 409);
      assert.equal(cash.body.error?.code, 'INSUFFICIENT_CASH');
      const list = await send('GET', '/orders?accountId=102', undefined, 'bob');
      await waitUntil(
        async () => {
          const orders = (await send('GET', '/orders?accountId=102', undefined, 'bob')).body.orders as OrderBody[];
          return orders.filter((o) => o.status === 'rejected').length === 2;
        },
        { what: 'the two rejected orders in the read model' },
      );
      assert.equal(list.status, 200);
      await settleAndCheckInvariants(system.database);
    });

    it('exchange rejection: the order fails, its reservation is released and its fee refunded', async () => {
      await knobs({ rejectSymbols: ['ABC'] });
      try {
        const id = await place('sell', { accountId: '101', symbol: 'ABC', quantity: 4 });
        const failed = await untilStatus(id, 'failed');
        assert.match(String(failed.reason), /halted/);
        await waitUntil(async () => (await order(id)).fee === '0.00', { what: 'the fee refunded' });
        assert.equal(await position('101', 'ABC'), 24, 'no ABC left the account');
      } finally {
        await knobs({ rejectSymbols: [] });
      }
      await settleAndCheckInvariants(system.database);
    });

    it('outage: the breaker opens, orders wait in the broker; an order not yet placed can be canceled; all complete once the exchange recovers', async () => {
      await knobs({ outage: true });
      let canceled: string | undefined;
      const waiting: string[] = [];
      try {
        // Orders until every market instance has failed at the exchange often enough to open its
        // breaker: from then on, new orders are not taken up.
        await waitUntil(
          async () => {
            waiting.push(await place('sell', { accountId: '101', symbol: 'BHP', quantity: 1 }));
            return (await system.readiness()).split('breaker is open').length > system.markets;
          },
          { timeoutMs: 30_000, intervalMs: 1000, what: 'every market’s breaker to open' },
        );
        canceled = await place('sell', { accountId: '101', symbol: 'BHP', quantity: 7 });
        const cancel = await send('POST', `/orders/${canceled}/cancel`, undefined, 'alice');
        assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
        assert.equal((cancel.body as unknown as OrderBody).status, 'canceled');
        for (const id of waiting) assert.equal((await order(id)).status, 'created', 'waiting, not failed');
      } finally {
        await knobs({ outage: false });
      }
      for (const id of waiting) await untilStatus(id, 'completed');
      assert.equal((await order(canceled!)).status, 'canceled');
      const again = await send('POST', `/orders/${waiting[0]}/cancel`, undefined, 'alice');
      assert.equal(again.status, 409);
      assert.equal(again.body.error?.code, 'ORDER_NOT_CANCELABLE');
      await settleAndCheckInvariants(system.database);
    });

    it('prices: all, one, 404 for an unknown symbol, 400 for a malformed one', async () => {
      const all = await send('GET', '/prices', undefined, 'alice');
      assert.deepEqual(
        (all.body as unknown as { symbol: string }[]).map((p) => p.symbol),
        ['ABC', 'BHP', 'GOOG'],
      );
      assert.equal((await send('GET', '/prices/GOOG', undefined, 'alice')).status, 200);
      const unknown = await send('GET', '/prices/ZZZ', undefined, 'alice');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error?.code, 'UNKNOWN_SYMBOL');
      assert.equal((await send('GET', '/prices/not-a-symbol', undefined, 'alice')).status, 400);
    });

    it('the fee report: fees per symbol for admins, 403 for customers', async () => {
      const report = await send('GET', '/reports/fees?groupBy=symbol', undefined, 'admin');
      assert.equal(report.status, 200, JSON.stringify(report.body));
      const rows = report.body.rows as { key: string; orders: number; fees: string }[];
      assert.ok(rows.some((row) => row.key === 'GOOG' && Number(row.fees) >= 1));
      assert.ok(!rows.some((row) => row.key === 'ABC' && row.orders > 1), 'the refunded ABC fee is not counted');
      assert.equal((await send('GET', '/reports/fees', undefined, 'alice')).status, 403);
    });

    it('security: a customer sees and acts only on their own accounts; bad input is a 400 with the fields', async () => {
      const mine = await place('sell', { accountId: '101', symbol: 'GOOG', quantity: 1 });
      assert.equal((await send('GET', `/orders/${mine}`, undefined, 'bob')).status, 403);
      assert.equal((await send('POST', `/orders/${mine}/cancel`, undefined, 'bob')).status, 403);
      assert.equal((await send('GET', '/orders?accountId=101', undefined, 'bob')).status, 403);
      assert.equal((await send('GET', '/accounts/101/transactions', undefined, 'bob')).status, 403);
      assert.equal(
        (await send('POST', '/shares/buy', { accountId: '101', symbol: 'GOOG', quantity: 1 }, 'bob')).status,
        403,
      );
      assert.equal((await send('GET', '/orders?accountId=101', undefined, 'admin')).status, 200);
      const bad = await send(
        'POST',
        '/shares/buy',
        { accountId: '102', symbol: 'goog', quantity: 1, amount: '5.00' },
        'bob',
      );
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.body.error?.details?.fields.map((f) => f.path).sort(), ['quantity', 'symbol']);
      const tooSmall = await send('POST', '/shares/buy', { accountId: '102', symbol: 'GOOG', amount: '1.50' }, 'bob');
      assert.equal(tooSmall.status, 400);
      assert.equal(tooSmall.body.error?.details?.fields[0]?.path, 'amount');
      await settleAndCheckInvariants(system.database);
    });

    // — payments, notifications, alerts —

    // — holdings, GraphQL —

    // — strategies —
  });
}
