import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Database, sql } from '@chassis/data';
import { requestJson, waitUntil } from '@chassis/testing';
import { settleAndCheckInvariants } from './invariants.ts';

/** A running SimpleBank, however it is deployed, as the scenarios see it. */
export interface SystemUnderTest {
  /** The gateway's base URL. */
  url: string;
  /** The exchange's base URL: its `/control` turns the outage, error and reject knobs. */
  exchangeUrl: string;
  /** The database the services keep their tables in (to check the invariants). */
  database: Database;
  /** Every node's readiness report, as JSON (the market nodes list their exchange breaker while it is open). */
  readiness(): Promise<string>;
  /** How many market instances run (each has its own breaker). */
  markets: number;
  /**
   * Takes market data down — no instance of it serving — and brings it back, the rest running on: what
   * holdings must degrade through. Absent where a topology cannot (its scenario is then skipped).
   */
  marketData?: { stop(): Promise<void>; start(): Promise<void> };
  stop(): Promise<void>;
}

type Answer = Record<string, unknown> & {
  error?: { code: string; message: string; details?: { fields: { path: string }[] } };
};
interface Account {
  id: string;
  cash: string;
}
interface Sent {
  eventId: string;
  channel: string;
  address: string | null;
  subject: string;
  sentAt: string;
}
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
    /** Waits for the status; a completed order also for its fee (it comes with the completion). */
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

    it('exchange rejection: the order fails, its reservation is released and no fee is kept', async () => {
      await knobs({ rejectSymbols: ['ABC'] });
      try {
        const id = await place('sell', { accountId: '101', symbol: 'ABC', quantity: 4 });
        const failed = await untilStatus(id, 'failed');
        assert.match(String(failed.reason), /halted/);
        await waitUntil(async () => (await order(id)).fee === '0.00', { what: 'no fee' });
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
            return (await system.readiness()).split('"target":"exchange","state":"open"').length > system.markets;
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
    it('payments: a payment credits the account’s cash once, a `payment` entry in the ledger; another customer’s account 403; a bad amount 400', async () => {
      const cashOf = async (accountId: string, user: string) => {
        const accounts = (await send('GET', '/accounts', undefined, user)).body as unknown as Account[];
        return Math.round(Number(accounts.find((a) => a.id === accountId)?.cash) * 100);
      };
      const before = await cashOf('102', 'bob');
      const paid = await send('POST', '/payments', { accountId: '102', amount: '250.00' }, 'bob');
      assert.equal(paid.status, 201, JSON.stringify(paid.body));
      const id = String(paid.body.id);
      assert.equal(paid.headers.get('location'), `/payments/${id}`);
      assert.deepEqual([paid.body.accountId, paid.body.amount, paid.body.status], ['102', '250.00', 'completed']);
      const fetched = await send('GET', `/payments/${id}`, undefined, 'bob');
      assert.equal(fetched.status, 200);
      assert.deepEqual(fetched.body, paid.body);
      assert.equal((await send('GET', `/payments/${id}`, undefined, 'admin')).status, 200);
      const peek = await send('GET', `/payments/${id}`, undefined, 'alice');
      assert.equal(peek.status, 404, 'another customer’s payment is not found');
      assert.equal(peek.body.error?.code, 'NOT_FOUND');

      assert.equal(await cashOf('102', 'bob'), before + 25_000);
      const ledger = await send('GET', '/accounts/102/transactions?size=100', undefined, 'bob');
      const entries = (ledger.body.entries as { orderId: string | null; kind: string; asset: string; amount: string }[])
        .filter((e) => e.orderId === id)
        .map((e) => [e.kind, e.asset, e.amount]);
      assert.deepEqual(entries, [['payment', 'CASH', '250.00']]);

      const bobs = await send('POST', '/payments', { accountId: '101', amount: '10.00' }, 'bob');
      assert.equal(bobs.status, 403);
      for (const amount of ['0.00', '-5.00', '1000000.01', '12.5', 12.5]) {
        const bad = await send('POST', '/payments', { accountId: '102', amount }, 'bob');
        assert.equal(bad.status, 400, `amount ${JSON.stringify(amount)}`);
        assert.deepEqual(
          bad.body.error?.details?.fields.map((f) => f.path),
          ['amount'],
        );
      }
      assert.equal(await cashOf('102', 'bob'), before + 25_000, 'refused payments credit nothing');
      await settleAndCheckInvariants(system.database);
    });

    it('notifications: one per completed order and per payment, on the account’s channel, newest first; only the owner (or an admin) lists them', async () => {
      const orderId = await place('sell', { accountId: '101', symbol: 'GOOG', quantity: 1 });
      await untilStatus(orderId, 'completed');
      const paid = await send('POST', '/payments', { accountId: '101', amount: '12.34' }, 'alice');
      assert.equal(paid.status, 201, JSON.stringify(paid.body));
      const events = [`orders.order_completed:${orderId}`, `payments.payment_completed:${paid.body.id}`];
      let sent: Sent[] = [];
      await waitUntil(
        async () => {
          const list = await send('GET', '/notifications?accountId=101&size=100', undefined, 'alice');
          sent = list.body.notifications as Sent[];
          return events.every((eventId) => sent.some((n) => n.eventId === eventId));
        },
        { timeoutMs: 30_000, what: 'the notifications of the order and the payment' },
      );
      const [ofOrder, ofPayment] = events.map((eventId) => sent.filter((n) => n.eventId === eventId));
      assert.equal(ofOrder!.length, 1);
      assert.equal(ofPayment!.length, 1);
      assert.deepEqual([ofOrder![0]!.channel, ofOrder![0]!.address], ['email', 'alice@example.com']);
      assert.match(ofOrder![0]!.subject, /sell order for 1 GOOG is complete/);
      assert.equal(ofPayment![0]!.subject, 'Payment of 12.34 received');
      const times = sent.map((n) => n.sentAt);
      assert.deepEqual(times, [...times].sort().reverse(), 'newest first');

      assert.equal((await send('GET', '/notifications?accountId=101', undefined, 'bob')).status, 403);
      assert.equal((await send('GET', '/notifications?accountId=101', undefined, 'admin')).status, 200);
      assert.equal((await send('GET', '/notifications', undefined, 'alice')).status, 400);
      await settleAndCheckInvariants(system.database);
      // Every order that ended, in every scenario so far, was told of once.
      await waitUntil(
        async () => {
          const { rows } = await sql<{ untold: number }>`
            select count(*)::int as untold from "customer-orders".order_summaries s
            where not exists (select 1 from notifications.notifications n
              where n.event_id = 'orders.order_' || s.status || ':' || s.order_id)`.execute(system.database.kysely);
          return rows[0]!.untold === 0;
        },
        { timeoutMs: 30_000, what: 'a notification for every order that ended' },
      );
    });

    it('alerts: Alertmanager and Grafana webhooks are taken without a token (202) and listed for admins, newest first; customers 403; a malformed one 400', async () => {
      const alertmanager = {
        version: '4',
        groupKey: '{}:{alertname="QueueBacklog"}',
        truncatedAlerts: 0,
        status: 'firing',
        receiver: 'simplebank',
        groupLabels: { alertname: 'QueueBacklog' },
        commonLabels: { alertname: 'QueueBacklog', severity: 'warning' },
        commonAnnotations: {},
        externalURL: 'http://alertmanager:9093',
        alerts: [
          {
            status: 'firing',
            labels: { alertname: 'QueueBacklog', queue: 'market.orders_created', severity: 'warning' },
            annotations: { summary: 'Messages are accumulating in the queue' },
            startsAt: '2026-01-01T10:00:00.123456789Z',
            endsAt: '0001-01-01T00:00:00Z',
            generatorURL: 'http://prometheus:9090/graph?g0.expr=queue_depth',
            fingerprint: 'a1b2c3d4e5f60718',
          },
          {
            status: 'resolved',
            labels: { alertname: 'QueueBacklog', queue: 'fees.order_placed', severity: 'warning' },
            annotations: {},
            startsAt: '2026-01-01T09:00:00Z',
            endsAt: '2026-01-01T09:30:00Z',
            fingerprint: '0f1e2d3c4b5a6978',
          },
        ],
      };
      const fromAlertmanager = await send('POST', '/alerts', alertmanager);
      assert.equal(fromAlertmanager.status, 202, JSON.stringify(fromAlertmanager.body));
      assert.deepEqual(fromAlertmanager.body, { received: 2 });
      // Grafana's unified alerting: Alertmanager's shape with its own keys.
      const grafana = {
        receiver: 'simplebank',
        status: 'firing',
        orgId: 1,
        alerts: [
          {
            status: 'firing',
            labels: { alertname: 'HighLatency', grafana_folder: 'SimpleBank' },
            annotations: { summary: 'orders.sell_shares p99 above 1 s' },
            startsAt: '2026-01-01T10:05:00Z',
            endsAt: '0001-01-01T00:00:00Z',
            values: { B: 1.3 },
            valueString: '[ var=B value=1.3 ]',
          },
        ],
        groupLabels: {},
        commonLabels: { alertname: 'HighLatency' },
        commonAnnotations: {},
        externalURL: 'http://grafana:3000/',
        version: '1',
        groupKey: '{}:{}',
        truncatedAlerts: 0,
        title: '[FIRING:1] HighLatency',
        state: 'alerting',
        message: 'orders.sell_shares p99 above 1 s',
      };
      const fromGrafana = await send('POST', '/alerts', grafana);
      assert.equal(fromGrafana.status, 202, JSON.stringify(fromGrafana.body));
      assert.deepEqual(fromGrafana.body, { received: 1 });
      // Grafana's legacy webhook: one rule, one state.
      const legacy = {
        title: '[Alerting] Cash reserved too long',
        ruleId: 7,
        ruleName: 'ReservationsHeld',
        ruleUrl: 'http://grafana:3000/d/simplebank',
        state: 'alerting',
        message: 'Reservations held for more than 5 minutes',
        evalMatches: [{ value: 3, metric: 'held', tags: null }],
        tags: { service: 'account-transactions' },
      };
      const fromLegacy = await send('POST', '/alerts', legacy);
      assert.equal(fromLegacy.status, 202, JSON.stringify(fromLegacy.body));
      assert.deepEqual(fromLegacy.body, { received: 1 });

      const listed = await send('GET', '/alerts', undefined, 'admin');
      assert.equal(listed.status, 200, JSON.stringify(listed.body));
      const alerts = listed.body.alerts as { source: string; alertname: string; status: string; labels: object }[];
      assert.deepEqual(
        alerts.slice(0, 4).map((a) => [a.source, a.alertname, a.status]),
        [
          ['grafana', 'ReservationsHeld', 'firing'],
          ['grafana', 'HighLatency', 'firing'],
          ['alertmanager', 'QueueBacklog', 'resolved'],
          ['alertmanager', 'QueueBacklog', 'firing'],
        ],
      );
      assert.deepEqual(alerts[0]!.labels, { service: 'account-transactions', alertname: 'ReservationsHeld' });
      assert.equal((await send('GET', '/alerts', undefined, 'alice')).status, 403);
      assert.equal((await send('GET', '/alerts')).status, 401);

      const malformed = await send('POST', '/alerts', {
        version: '4',
        status: 'firing',
        alerts: [{ status: 'burning', labels: { severity: 'page' } }],
      });
      assert.equal(malformed.status, 400);
      assert.deepEqual(malformed.body.error?.details?.fields.map((f) => f.path).sort(), [
        'alerts.0.labels.alertname',
        'alerts.0.startsAt',
        'alerts.0.status',
      ]);
      const empty = await send('POST', '/alerts', {});
      assert.equal(empty.status, 400);
      assert.deepEqual(
        empty.body.error?.details?.fields.map((f) => f.path),
        ['alerts'],
      );
    });

    // — holdings, GraphQL —
    interface HoldingsBody {
      accountId: string;
      cash: string;
      positions: { symbol: string; quantity: number; reserved: number; price: string | null; value: string | null }[];
      total: string;
      pricedAt: string | null;
      degraded: boolean;
    }
    const cents = (amount: string) => Math.round(Number(amount) * 100);
    const holdings = async (accountId: string, user = 'alice') => {
      const answer = await send('GET', `/accounts/${accountId}/holdings`, undefined, user);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      return answer.body as unknown as HoldingsBody;
    };
    /** What every holdings answer must add up to: value = quantity × price, total = cash + the values. */
    const checkSums = (body: HoldingsBody) => {
      for (const p of body.positions) {
        assert.equal(p.value === null ? null : cents(p.value), p.price === null ? null : p.quantity * cents(p.price));
      }
      const values = body.positions.reduce((sum, p) => sum + (p.value === null ? 0 : cents(p.value)), 0);
      assert.equal(cents(body.total), cents(body.cash) + values, JSON.stringify(body));
    };
    /** What the ledger's entries say an account owns of a symbol, every page of them. */
    const owned = async (accountId: string, symbol: string) => {
      let sum = 0;
      for (let page = 1; ; page++) {
        const path = `/accounts/${accountId}/transactions?size=100&page=${page}`;
        const entries = (await send('GET', path, undefined, 'admin')).body.entries as {
          asset: string;
          amount: string;
        }[];
        sum += entries.filter((e) => e.asset === symbol).reduce((total, e) => total + Number(e.amount), 0);
        if (entries.length < 100) return sum;
      }
    };
    const untilLive = async (accountId: string) => {
      let last: HoldingsBody | undefined;
      await waitUntil(
        async () => {
          last = await holdings(accountId);
          return !last.degraded;
        },
        { timeoutMs: 30_000, intervalMs: 250, what: `holdings priced again (last: ${JSON.stringify(last)})` },
      );
      return last!;
    };

    // First of the holdings scenarios: until now holdings has seen no price at all.
    it('holdings while market data is down: quantities without valuations, then the last prices seen, live again once it is back', async (t) => {
      const marketData = system.marketData;
      if (!marketData) return t.skip('this topology cannot take market data down');
      let down = false;
      try {
        await marketData.stop();
        down = true;
        // Never priced: the quantities from the ledger, no valuations, the total is the cash.
        const blind = await holdings('101');
        assert.equal(blind.degraded, true);
        assert.equal(blind.pricedAt, null);
        assert.ok(blind.positions.length > 0);
        for (const p of blind.positions) {
          assert.ok(p.quantity > 0);
          assert.equal(p.price, null);
          assert.equal(p.value, null);
        }
        assert.equal(blind.total, blind.cash);

        await marketData.start();
        down = false;
        const live = await untilLive('101');
        checkSums(live);
        assert.deepEqual(
          live.positions.map((p) => [p.symbol, p.quantity, p.price !== null]),
          blind.positions.map((p) => [p.symbol, p.quantity, true]),
        );

        // Down again: the last prices seen stand in, with their time.
        await marketData.stop();
        down = true;
        const stale = await holdings('101');
        assert.equal(stale.degraded, true);
        assert.deepEqual(
          stale.positions.map((p) => [p.symbol, p.quantity, p.price]),
          live.positions.map((p) => [p.symbol, p.quantity, p.price]),
        );
        assert.equal(stale.pricedAt, live.pricedAt);
        checkSums(stale);
        // The rest of the API still answers: the ledger is up.
        assert.equal((await send('GET', '/accounts', undefined, 'alice')).status, 200);
      } finally {
        if (down) await marketData.start();
      }
      assert.equal((await untilLive('101')).degraded, false);
    });

    it('holdings: positions valued at current prices, total = cash + values; only the owner and admins see them', async () => {
      const mine = await holdings('101');
      assert.equal(mine.accountId, '101');
      assert.equal(mine.degraded, false);
      assert.match(String(mine.pricedAt), /^\d{4}-\d\d-\d\dT/);
      const accounts = (await send('GET', '/accounts', undefined, 'alice')).body as unknown as {
        id: string;
        cash: string;
      }[];
      assert.equal(mine.cash, accounts.find((a) => a.id === '101')?.cash);
      for (const p of mine.positions) {
        assert.match(String(p.price), /^\d+\.\d{2}$/);
        assert.equal(p.quantity, await owned('101', p.symbol), `${p.symbol} as the ledger has it`);
      }
      checkSums(mine);
      const others = await send('GET', '/accounts/101/holdings', undefined, 'bob');
      assert.equal(others.status, 403);
      assert.equal(others.body.error?.code, 'FORBIDDEN');
      assert.equal((await holdings('101', 'admin')).accountId, '101');
      assert.equal((await send('GET', '/accounts/101/holdings')).status, 401);
    });

    it('GraphQL: alice’s accounts with their holdings and orders in one query; another customer’s account is FORBIDDEN', async () => {
      const graphql = (query: string, user?: string) => send('POST', '/graphql', { query }, user);
      const answer = await graphql(
        '{ accounts { id name currentHoldings { asset { id price } quantity } orders { id status quantity asset { id } } } }',
        'alice',
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body.errors, undefined, JSON.stringify(answer.body));
      type Account = {
        id: string;
        name: string;
        currentHoldings: { asset: { id: string; price: string | null }; quantity: number }[];
        orders: { id: string; status: string; quantity: number; asset: { id: string } }[];
      };
      const accounts = (answer.body.data as { accounts: Account[] }).accounts;
      assert.deepEqual(
        accounts.map((a) => a.id),
        ['101'],
      );
      const [account] = accounts as [Account];
      assert.ok(account.name.length > 0);
      const rest = await holdings('101');
      assert.deepEqual(
        account.currentHoldings.map((h) => [h.asset.id, h.quantity]),
        rest.positions.map((p) => [p.symbol, p.quantity]),
      );
      for (const h of account.currentHoldings) assert.match(String(h.asset.price), /^\d+\.\d{2}$/);
      const orders = (await send('GET', '/orders?accountId=101&size=100', undefined, 'alice')).body.orders as {
        id: string;
        symbol: string;
        quantity: number;
      }[];
      assert.ok(orders.length > 0);
      assert.deepEqual(
        account.orders.map((o) => [o.id, o.asset.id, o.quantity]),
        orders.map((o) => [o.id, o.symbol, o.quantity]),
      );

      const bobs = await graphql('{ account(id: "102") { id name } }', 'alice');
      assert.equal(bobs.status, 200, JSON.stringify(bobs.body));
      const { data, errors } = bobs.body as {
        data: unknown;
        errors?: { path?: unknown[]; extensions?: { code?: string } }[];
      };
      assert.deepEqual(data, { account: null });
      assert.deepEqual(errors?.[0]?.path, ['account']);
      assert.equal(errors?.[0]?.extensions?.code, 'FORBIDDEN');
      const own = await graphql('{ account(id: "101") { id } }', 'alice');
      assert.deepEqual(own.body.data, { account: { id: '101' } });
    });

    // — strategies —
    it('a strategy investment: an admin creates the strategy, a payment funds it, one buy per allocation, completed', async () => {
      const assets = [
        { assetId: 'BHP', percentage: 60 },
        { assetId: 'GOOG', percentage: 40 },
      ];
      const created = await send('POST', '/strategies', { name: 'Balanced', assets }, 'admin');
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.headers.get('location'), `/strategies/${created.body.id}`);
      assert.equal(created.body.createdById, 'admin');
      const strategyId = String(created.body.id);
      assert.equal((await send('POST', '/strategies', { name: 'Mine', assets }, 'alice')).status, 403);
      const uneven = await send(
        'POST',
        '/strategies',
        { name: 'Uneven', assets: [{ assetId: 'BHP', percentage: 90 }] },
        'admin',
      );
      assert.equal(uneven.status, 400);
      assert.match(JSON.stringify(uneven.body.error?.details), /sum to 100/);
      assert.equal((await send('GET', `/strategies/${strategyId}`, undefined, 'bob')).status, 200);

      const payment = await send('POST', '/payments', { accountId: '102', amount: '500.00' }, 'bob');
      assert.equal(payment.status, 201, JSON.stringify(payment.body));
      const paymentId = String(payment.body.id);
      const request = { destinationAccountId: '102', amount: '500.00', paymentId };
      assert.equal((await send('POST', `/strategies/${strategyId}/orders`, request, 'alice')).status, 403);
      const invested = await send('POST', `/strategies/${strategyId}/orders`, request, 'bob');
      assert.equal(invested.status, 202, JSON.stringify(invested.body));
      const investmentId = String(invested.body.id);
      const again = await send('POST', `/strategies/${strategyId}/orders`, request, 'bob');
      assert.equal(again.body.id, investmentId, 'one investment per payment');

      type InvestmentBody = { status: string; orders: { symbol: string; amount: string; status: string }[] };
      const investment = async () =>
        (await send('GET', `/investments/${investmentId}`, undefined, 'bob')).body as unknown as InvestmentBody;
      await waitUntil(async () => (await investment()).status === 'completed', {
        timeoutMs: 60_000,
        what: 'the investment completed',
      });
      assert.deepEqual(
        (await investment()).orders.map((o) => [o.symbol, o.amount, o.status]),
        [
          ['BHP', '300.00', 'completed'],
          ['GOOG', '200.00', 'completed'],
        ],
      );
      assert.equal((await send('GET', `/investments/${investmentId}`, undefined, 'alice')).status, 403);
      await settleAndCheckInvariants(system.database);
    });
  });
}
