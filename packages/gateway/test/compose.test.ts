import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChassisError, isChassisError } from '@chassis/core';
import { compose, errorBodySchema } from '@chassis/gateway';
import { waitUntil } from '@chassis/testing';
import {
  type BankApi,
  bankRoutes,
  bffRoutes,
  OVERVIEW_REPORT_BUDGET_MS,
  slowReport,
  startBankApi,
  token,
} from './bank-api.ts';

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = Date.now();
  const result = await work();
  return { result, ms: Date.now() - started };
}

describe('compose', () => {
  let api: BankApi;
  before(async () => {
    api = await startBankApi({ routes: [...bankRoutes, ...bffRoutes] });
  });
  after(() => api.close());

  it('runs the parts at once: each of three 150 ms calls starts before any ends', async () => {
    // The order of starts and ends shows it, where a time bound would depend on the machine's load.
    const log: string[] = [];
    const report = (name: string) => async () => {
      log.push(`start ${name}`);
      const answer = await api.node.call(slowReport, { ms: 150 });
      log.push(`end ${name}`);
      return answer;
    };
    const { result, ms } = await timed(() =>
      compose({ one: report('one'), two: report('two'), three: report('three') }),
    );
    assert.equal(result.partial, false);
    assert.deepEqual(result.errors, {});
    assert.equal(result.data.one?.aborted, false);
    assert.deepEqual(log.slice(0, 3), ['start one', 'start two', 'start three'], log.join(', '));
    assert.ok(ms >= 140, `took ${ms} ms, less than one call`);
  });

  it('a part past its own budget fails with TIMEOUT at once, its signal aborted; the others are returned', async () => {
    let signal: AbortSignal | undefined;
    let budgetMs: number | undefined;
    const { result, ms } = await timed(() =>
      compose(
        {
          fast: async () => 'quick',
          slow: async (budget) => {
            signal = budget.signal;
            budgetMs = budget.timeoutMs;
            await sleep(20_000, undefined, { signal: budget.signal });
            return 'never';
          },
        },
        { timeoutMs: { slow: 50 } },
      ),
    );
    // Far from the part's 20 s: only its budget can have ended it (a loaded machine may be late by seconds).
    assert.ok(ms >= 45 && ms < 10_000, `answered at the part's budget (${ms} ms)`);
    assert.equal(budgetMs, 50, 'the part knows its budget, to pass on to its calls');
    assert.equal(result.partial, true);
    assert.deepEqual(result.data, { fast: 'quick', slow: null });
    assert.equal(result.errors.slow?.code, 'TIMEOUT');
    assert.match(result.errors.slow?.message ?? '', /"slow" took longer than its 50 ms/);
    assert.equal(signal?.aborted, true);
  });

  it('without a budget of its own, a part has what remains of the deadline', async () => {
    const { result, ms } = await timed(() =>
      compose({ slow: () => sleep(20_000, 'never') }, { deadline: Date.now() + 80, timeoutMs: { slow: 30_000 } }),
    );
    assert.ok(ms >= 70 && ms < 10_000, `answered at the deadline (${ms} ms)`);
    assert.equal(result.errors.slow?.code, 'TIMEOUT');
    assert.match(result.errors.slow?.message ?? '', /deadline/);

    const passed = await compose({ late: async () => 'x' }, { deadline: Date.now() - 1 });
    assert.equal(passed.errors.late?.code, 'TIMEOUT', 'a deadline already passed fails the part without running it');
  });

  it('a failed required part fails the whole with its own error, without waiting for the others', async () => {
    let slowSignal: AbortSignal | undefined;
    const missing = new ChassisError('NOT_FOUND', 'No account 999');
    const { result, ms } = await timed(() =>
      compose(
        {
          account: async () => {
            await sleep(20);
            throw missing;
          },
          extras: async ({ signal }) => {
            slowSignal = signal;
            return sleep(20_000, 'extras', { signal });
          },
        },
        { required: ['account'] },
      ).then(
        () => assert.fail('the composition should fail'),
        (error: unknown) => error,
      ),
    );
    assert.equal(result, missing);
    assert.ok(ms < 10_000, `failed without waiting for the 20 s part (${ms} ms)`);
    assert.equal(slowSignal?.aborted, true, 'the parts nobody will read are abandoned');
  });

  it('types: values are inferred per part, required parts are never null; internal errors say nothing', async () => {
    const result = await compose(
      {
        count: async () => 3,
        label: async () => 'three',
        broken: async (): Promise<boolean> => {
          throw new Error('connection string postgres://admin:secret@db');
        },
      },
      { required: ['count'] },
    );
    const count: number = result.data.count;
    const label: string | null = result.data.label;
    // @ts-expect-error an optional part may be null
    const notNull: string = result.data.label;
    assert.deepEqual([count, label, notNull], [3, 'three', 'three']);
    assert.deepEqual(result.errors.broken, { code: 'INTERNAL', message: 'The part failed inside the system' });

    await assert.rejects(
      // @ts-expect-error only a part can be required
      compose({ a: async () => 1 }, { required: ['b'] }),
      (error) => isChassisError(error, 'CONFIG'),
    );
  });

  describe('GET /accounts/:accountId/overview', () => {
    const overview = async (query: string, headers: Record<string, string> = {}) =>
      api.gateway.app.inject({
        method: 'GET',
        url: `/accounts/101/overview${query}`,
        headers: { authorization: `Bearer ${await token.alice()}`, ...headers },
      });

    it('answers every part when all succeed', async () => {
      const response = await overview('');
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json();
      assert.equal(body.partial, false);
      assert.deepEqual(body.errors, {});
      assert.deepEqual(body.data.transactions, { accountId: '101', page: 1, size: 5, entries: ['entry-1'] });
      assert.deepEqual(body.data.prices, [
        { symbol: 'BHP', price: '91.72' },
        { symbol: 'GOOG', price: '34.21' },
      ]);
      assert.equal(body.data.report.aborted, false);
    });

    it('a slow part and a failing one are marked with their codes; the rest is returned at the slow part’s budget', async () => {
      const abortedBefore = api.state.aborted;
      const { result: response, ms } = await timed(() => overview('?symbols=BHP,ZZZ&reportMs=10000'));
      assert.equal(response.statusCode, 200, response.body);
      // The message says which budget ended the report (its own, not the request's 5 s deadline); the
      // time bound only shows the 10 s report was not waited for, with room for a loaded machine.
      assert.ok(
        ms >= OVERVIEW_REPORT_BUDGET_MS - 10 && ms < 5000,
        `answered at the report's budget, not after it (${ms} ms)`,
      );
      const body = response.json();
      assert.equal(body.partial, true);
      assert.equal(body.data.report, null);
      assert.equal(body.data.prices, null);
      assert.equal(body.data.transactions.accountId, '101');
      assert.equal(body.errors.report.code, 'TIMEOUT');
      assert.match(body.errors.report.message, new RegExp(`took longer than its ${OVERVIEW_REPORT_BUDGET_MS} ms`));
      assert.equal(body.errors.prices.code, 'NOT_FOUND');
      assert.match(body.errors.prices.message, /ZZZ/);
      assert.equal(body.errors.transactions, undefined);
      // The report's budget went with its call: the service stopped working on it too.
      await waitUntil(() => api.state.aborted > abortedBefore, { what: 'the abandoned report’s abort signal' });
    });

    it('a required part that fails answers with its status and code in the gateway’s error shape', async () => {
      const response = await overview('?size=1000&reportMs=2000');
      assert.equal(response.statusCode, 400, response.body);
      const error = errorBodySchema.parse(response.json()).error;
      assert.equal(error.code, 'VALIDATION');
      const fields = (error.details as { fields: { path: string }[] }).fields.map((f) => f.path);
      assert.deepEqual(fields, ['size']);

      const bobs = await api.gateway.app.inject({
        method: 'GET',
        url: '/accounts/101/overview',
        headers: { authorization: `Bearer ${await token.bob()}` },
      });
      assert.equal(bobs.statusCode, 403, 'another customer’s overview is refused before any part runs');
    });
  });
});
