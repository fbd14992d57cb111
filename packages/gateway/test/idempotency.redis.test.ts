import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { MemoryBroker } from '@chassis/core';
import { servers, skipUnlessUp } from '@chassis/testing';
import { Redis } from 'ioredis';
import { startBankApi, token } from './bank-api.ts';

const redisSkip = await skipUnlessUp('redis');

describe('gateway: Idempotency-Key shared through Redis', { skip: redisSkip }, () => {
  it('a retry that lands on the other gateway instance gets the first answer; the action ran once', async () => {
    const redis = new Redis(servers.redis.url);
    // Both gateways in front of the same services (one broker), as behind a load balancer.
    const broker = new MemoryBroker();
    const one = await startBankApi({ redis }, broker);
    const two = await startBankApi({ redis }, broker);
    try {
      const key = `sell-${randomBytes(6).toString('hex')}`;
      const request = async (api: typeof one, quantity: number) =>
        api.gateway.app.inject({
          method: 'POST',
          url: '/shares/sell',
          headers: { authorization: `Bearer ${await token.alice()}`, 'idempotency-key': key },
          payload: { accountId: '101', symbol: 'BHP', quantity },
        });
      const first = await request(one, 5);
      const retry = await request(two, 5);
      assert.equal(first.statusCode, 202, first.body);
      assert.equal(retry.statusCode, 202);
      assert.deepEqual(retry.json(), first.json());
      assert.equal(retry.headers['idempotent-replayed'], 'true');
      // Each instance's services count their own sells: one of them sold, the other replayed.
      assert.equal(one.state.sells + two.state.sells, 1, 'sold once across both instances');
      const reused = await request(two, 6);
      assert.equal(reused.statusCode, 422);
    } finally {
      await Promise.all([one.close(), two.close()]);
      await redis.quit();
    }
  });
});
