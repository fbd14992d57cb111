import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type ExchangeSimulator,
  type ExchangeSimulatorOptions,
  seededRandom,
  startExchangeSimulator,
  walkPrice,
} from '../exchange-simulator/simulator.ts';

/** A JSON answer: a success body, or the simulator's error shape. */
type Answer = Record<string, unknown> & {
  error?: { code: string; message: string; details?: { fields: { path: string }[] } };
};

async function send(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Answer }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Answer };
}

const order = (clientOrderId: string, overrides: Record<string, unknown> = {}) => ({
  clientOrderId,
  side: 'sell',
  symbol: 'BHP',
  quantity: 10,
  ...overrides,
});

const NO_FAULTS = { latencyMs: 0, errorRate: 0, outage: false, rejectRate: 0, rejectSymbols: [] };

describe('exchange simulator', () => {
  const started: ExchangeSimulator[] = [];
  const start = async (options: ExchangeSimulatorOptions) => {
    const exchange = await startExchangeSimulator(options);
    started.push(exchange);
    return exchange;
  };
  after(() => Promise.all(started.map((exchange) => exchange.close())));

  // One frozen-price exchange for the request tests; each test starts from healthy knobs.
  let exchange: ExchangeSimulator;
  let call: (method: string, path: string, body?: unknown) => ReturnType<typeof send>;
  before(async () => {
    exchange = await start({ tickMs: 0, seed: 1 });
    call = (method, path, body) => send(exchange.url, method, path, body);
  });
  beforeEach(() => exchange.configure(NO_FAULTS));

  it('lists prices, answers one symbol, and 404s an unknown one', async () => {
    const listed = await call('GET', '/prices');
    assert.equal(listed.status, 200);
    const prices = listed.body.prices as { symbol: string; price: string; at: string }[];
    assert.deepEqual(
      prices.map(({ symbol, price }) => [symbol, price]),
      [
        ['BHP', '91.72'],
        ['GOOG', '34.21'],
        ['ABC', '1.17'],
      ],
    );
    for (const { at } of prices) assert.ok(Date.parse(at) > 0, `${at} is an ISO time`);

    const one = await call('GET', '/prices/GOOG');
    assert.equal(one.status, 200);
    assert.deepEqual([one.body.symbol, one.body.price], ['GOOG', '34.21']);

    const unknown = await call('GET', '/prices/NOPE');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error?.code, 'UNKNOWN_SYMBOL');
  });

  it('prints given prices with two decimal places', async () => {
    const custom = await start({ tickMs: 0, prices: { WHOLE: '5', HALF: '0.5', CENT: '0.01' } });
    assert.deepEqual(custom.prices(), { WHOLE: '5.00', HALF: '0.50', CENT: '0.01' });
    await assert.rejects(start({ tickMs: 0, prices: { FREE: '0.00' } }), RangeError);
    await assert.rejects(start({ tickMs: 0, prices: { FLOAT: '1.234' } }), RangeError);
  });

  it('fills a market order at the current price', async () => {
    const before = exchange.stats();
    const filled = await call('POST', '/orders', order('fill-1', { side: 'buy', quantity: 7 }));
    assert.equal(filled.status, 200);
    const { exchangeOrderId, filledAt, ...rest } = filled.body;
    assert.deepEqual(rest, {
      clientOrderId: 'fill-1',
      status: 'filled',
      side: 'buy',
      symbol: 'BHP',
      quantity: 7,
      price: exchange.prices().BHP,
    });
    assert.equal(typeof exchangeOrderId, 'string');
    assert.ok(Date.parse(String(filledAt)) > 0);
    assert.equal(exchange.stats().filled, before.filled + 1);
  });

  it('answers a repeated clientOrderId with the first answer and counts one order', async () => {
    const before = exchange.stats();
    const first = await call('POST', '/orders', order('dup-1'));
    const again = await call('POST', '/orders', order('dup-1', { quantity: 99 }));
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, first.body);

    // A caller that timed out and retried while the first attempt was still in flight.
    exchange.configure({ latencyMs: 50 });
    const [racing, retried] = await Promise.all([
      call('POST', '/orders', order('dup-2')),
      call('POST', '/orders', order('dup-2')),
    ]);
    assert.deepEqual(retried.body, racing.body);

    const after = exchange.stats();
    assert.equal(after.ordersReceived, before.ordersReceived + 2);
    assert.equal(after.filled, before.filled + 2);
    assert.equal(after.duplicates, before.duplicates + 2);
  });

  it('rejects orders for rejectSymbols, unknown symbols, and every order at rejectRate 1', async () => {
    exchange.configure({ rejectSymbols: ['ABC'] });
    const halted = await call('POST', '/orders', order('reject-1', { symbol: 'ABC' }));
    assert.equal(halted.status, 200);
    assert.equal(halted.body.status, 'rejected');
    assert.match(String(halted.body.reason), /ABC/);
    assert.equal((await call('POST', '/orders', order('reject-2'))).body.status, 'filled');

    const unknown = await call('POST', '/orders', order('reject-3', { symbol: 'NOPE' }));
    assert.equal(unknown.body.status, 'rejected');
    assert.match(String(unknown.body.reason), /Unknown symbol/);

    exchange.configure({ rejectSymbols: [], rejectRate: 1 });
    for (const id of ['reject-4', 'reject-5', 'reject-6']) {
      const rejected = await call('POST', '/orders', order(id));
      assert.deepEqual(Object.keys(rejected.body).sort(), ['clientOrderId', 'exchangeOrderId', 'reason', 'status']);
      assert.equal(rejected.body.status, 'rejected');
    }
    // A rejection is an answer too: retrying it must not draw again.
    exchange.configure({ rejectRate: 0 });
    assert.equal((await call('POST', '/orders', order('reject-4'))).body.status, 'rejected');
  });

  it('answers 503 during an outage, keeps /control working, and heals through PUT /control', async () => {
    const before = exchange.stats();
    const down = await call('PUT', '/control', { outage: true });
    assert.equal(down.status, 200);
    assert.equal((down.body.knobs as { outage: boolean }).outage, true);

    for (const [method, path, body] of [
      ['GET', '/prices', undefined],
      ['GET', '/prices/BHP', undefined],
      ['POST', '/orders', order('outage-1')],
    ] as const) {
      const answer = await call(method, path, body);
      assert.equal(answer.status, 503, `${method} ${path}`);
      assert.equal(answer.body.error?.code, 'EXCHANGE_UNAVAILABLE');
    }
    const control = await call('GET', '/control');
    assert.equal(control.status, 200);
    assert.equal((control.body.stats as { errors: number }).errors, before.errors + 3);
    assert.equal((control.body.stats as { ordersReceived: number }).ordersReceived, before.ordersReceived);

    assert.equal((await call('PUT', '/control', { outage: false })).status, 200);
    assert.equal((await call('GET', '/prices')).status, 200);
    assert.equal((await call('POST', '/orders', order('outage-1'))).body.status, 'filled');
  });

  it('answers 503 to every trading and price request at errorRate 1', async () => {
    exchange.configure({ errorRate: 1 });
    for (const path of ['/prices', '/prices/BHP']) {
      assert.equal((await call('GET', path)).status, 503);
    }
    const refused = await call('POST', '/orders', order('error-1'));
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error?.code, 'EXCHANGE_UNAVAILABLE');
  });

  it('adds latencyMs before answering, but not to /control', async () => {
    const latencyMs = 120;
    exchange.configure({ latencyMs });
    for (const [method, path, body] of [
      ['GET', '/prices', undefined],
      ['POST', '/orders', order('latency-1')],
    ] as const) {
      const startedAt = performance.now();
      assert.equal((await call(method, path, body)).status, 200);
      // libuv timers count whole milliseconds, so one may fire a fraction of a millisecond early.
      assert.ok(performance.now() - startedAt >= latencyMs - 1, `${method} ${path} waited the latency`);
    }

    exchange.configure({ latencyMs: 300_000 });
    const control = await fetch(`${exchange.url}/control`, { signal: AbortSignal.timeout(5000) });
    assert.equal(control.status, 200);
  });

  it('answers 400 to a bad order body', async () => {
    const before = exchange.stats();
    const cases: [unknown, string[]][] = [
      [{}, ['clientOrderId', 'quantity', 'side', 'symbol']],
      [order('', { side: 'hold', quantity: 0 }), ['clientOrderId', 'quantity', 'side']],
      [order('x'.repeat(101), { quantity: 1.5, symbol: '' }), ['clientOrderId', 'quantity', 'symbol']],
      [[order('array-1')], ['(root)']],
    ];
    for (const [body, fields] of cases) {
      const refused = await call('POST', '/orders', body);
      assert.equal(refused.status, 400, JSON.stringify(body));
      assert.equal(refused.body.error?.code, 'BAD_REQUEST');
      assert.deepEqual(refused.body.error?.details?.fields.map((f) => f.path).sort(), fields);
    }
    const malformed = await fetch(`${exchange.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"clientOrderId":',
    });
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as Answer).error?.code, 'BAD_REQUEST');
    assert.deepEqual(exchange.stats(), before, 'a refused body is not an order');
  });

  it('answers 400 to bad knobs and keeps the old ones', async () => {
    const before = exchange.knobs;
    for (const knobs of [
      { errorRate: 2 },
      { rejectRate: -0.1 },
      { latencyMs: -1 },
      { latencyMs: 1.5 },
      { outage: 'yes' },
      { rejectSymbols: 'ABC' },
      { errorrate: 1 },
    ]) {
      const refused = await call('PUT', '/control', knobs);
      assert.equal(refused.status, 400, JSON.stringify(knobs));
      assert.equal(refused.body.error?.code, 'BAD_REQUEST');
    }
    assert.equal((await call('PUT', '/control')).status, 400, 'no body at all');
    assert.throws(() => exchange.configure({ errorRate: 2 }), RangeError);
    assert.deepEqual(exchange.knobs, before);
  });

  it('walks prices every tick, never below 0.01', async () => {
    const walking = await start({ tickMs: 5, seed: 7, prices: { BHP: '91.72', CENT: '0.01', TWO: '0.02' } });
    const startedAt = Date.now();
    let latest = walking.prices();
    while (latest.BHP === '91.72' && Date.now() - startedAt < 5000) {
      await sleep(10);
      latest = walking.prices();
    }
    assert.notEqual(latest.BHP, '91.72', 'BHP moved');
    const quote = (await send(walking.url, 'GET', '/prices/BHP')).body;
    assert.ok(Date.parse(String(quote.at)) >= startedAt - 1000, 'at tells when the price last changed');
    for (let i = 0; i < 10; i++) {
      for (const price of Object.values(walking.prices())) assert.ok(Number(price) >= 0.01, price);
      await sleep(5);
    }

    for (const startCents of [1, 2, 117, 9172]) {
      const random = seededRandom(startCents);
      let cents = startCents;
      for (let step = 0; step < 5000; step++) {
        const next = walkPrice(cents, random);
        assert.ok(Number.isInteger(next) && next >= 1, `${next} is whole cents, at least one`);
        assert.ok(Math.abs(next - cents) <= cents * 0.005 + 0.5, `${cents} → ${next} stays within ±0.5%`);
        cents = next;
      }
    }
  });

  it('repeats the same walk and the same error and reject draws for the same seed', async () => {
    const path = (seed: number) => {
      const random = seededRandom(seed);
      const steps = [9172];
      while (steps.length < 200) steps.push(walkPrice(steps.at(-1)!, random));
      return steps;
    };
    assert.deepEqual(path(42), path(42));
    assert.notDeepEqual(path(42), path(43));

    const outcomes = async (seed: number) => {
      const seeded = await start({ tickMs: 0, seed, knobs: { errorRate: 0.3, rejectRate: 0.5 } });
      const seen: string[] = [];
      for (let i = 0; i < 30; i++) {
        const answer = await send(seeded.url, 'POST', '/orders', order(`seeded-${i}`));
        seen.push(answer.status === 503 ? 'unavailable' : String(answer.body.status));
      }
      return seen;
    };
    const first = await outcomes(1234);
    assert.deepEqual(await outcomes(1234), first);
    assert.deepEqual([...new Set(first)].sort(), ['filled', 'rejected', 'unavailable']);
    assert.notDeepEqual(await outcomes(4321), first);
  });
});
