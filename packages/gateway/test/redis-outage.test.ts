import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { errorBodySchema } from '@chassis/gateway';
import { freePort, skipUnlessUp, waitUntil } from '@chassis/testing';
import { startBankApi, token } from './bank-api.ts';

// A Redis of the test's own, on a port of its own, so it can be killed without touching the shared one.
const skip = await skipUnlessUp('redis');

function startRedis(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
}

/**
 * The gateway's Redis (rate limits, Idempotency-Key) going away must not turn requests into 500s: while
 * it is gone, requests are served without a limit and a request with an Idempotency-Key is refused with
 * 503 (it could not be kept to once); when it is back, both work again.
 */
describe('gateway: its Redis goes away and comes back', { skip }, () => {
  it('serves without limits and answers 503 to Idempotency-Key requests meanwhile; never a 500', async () => {
    const port = await freePort();
    let redis = startRedis(port);
    const api = await startBankApi({
      redis: `redis://127.0.0.1:${port}`,
      rateLimit: { max: 1000, timeWindowMs: 60_000 },
    });
    const alice = `Bearer ${await token.alice()}`;
    const list = () => api.gateway.app.inject({ method: 'GET', url: '/accounts', headers: { authorization: alice } });
    const sell = (key: string) =>
      api.gateway.app.inject({
        method: 'POST',
        url: '/shares/sell',
        headers: { authorization: alice, 'idempotency-key': key },
        payload: { accountId: '101', symbol: 'BHP', quantity: 1 },
      });
    try {
      const before = await list();
      assert.equal(before.statusCode, 200);
      assert.ok(before.headers['ratelimit-limit'], 'limited while Redis is there');
      assert.equal((await sell('before-outage')).statusCode, 202);

      redis.kill('SIGKILL');
      await once(redis, 'exit');
      const during = await list();
      assert.equal(during.statusCode, 200, during.body);
      const refused = await sell('during-outage');
      assert.equal(refused.statusCode, 503, refused.body);
      const body = errorBodySchema.parse(refused.json());
      assert.equal(body.error.code, 'UNAVAILABLE');
      assert.match(body.error.message, /Idempotency-Key/);
      const sellsDuringOutage = api.state.sells;

      redis = startRedis(port);
      await waitUntil(async () => (await sell('after-outage')).statusCode === 202, {
        timeoutMs: 15_000,
        what: 'Idempotency-Key requests to work again',
      });
      assert.equal(api.state.sells, sellsDuringOutage + 1, 'the refused request never ran');
      const replay = await sell('after-outage');
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.ok((await list()).headers['ratelimit-limit'], 'limited again');
    } finally {
      await api.close();
      redis.kill('SIGKILL');
    }
  });
});
