import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { signToken } from '@chassis/core';
import { errorBodySchema } from '@chassis/gateway';
import { servers, skipUnlessUp } from '@chassis/testing';
import { Redis } from 'ioredis';
import { SECRET, startBankApi, token } from './bank-api.ts';

const redisSkip = await skipUnlessUp('redis');

describe('gateway: rate limits', () => {
  it('over the limit: 429 in the error shape with RateLimit-* and Retry-After; clients are counted apart', async () => {
    const api = await startBankApi({ rateLimit: { max: 3, timeWindowMs: 60_000 } });
    try {
      const alice = `Bearer ${await token.alice()}`;
      const statuses: number[] = [];
      let last: Awaited<ReturnType<typeof api.gateway.app.inject>> | undefined;
      for (let i = 0; i < 5; i++) {
        last = await api.gateway.app.inject({ method: 'GET', url: '/accounts', headers: { authorization: alice } });
        statuses.push(last.statusCode);
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
      assert.ok(last);
      const body = errorBodySchema.parse(last.json());
      assert.equal(body.error.code, 'RATE_LIMITED');
      assert.equal(last.headers['ratelimit-limit'], '3');
      assert.equal(last.headers['ratelimit-remaining'], '0');
      const retryAfter = Number(last.headers['retry-after']);
      assert.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After in seconds: ${last.headers['retry-after']}`);

      // Another customer has a budget of their own.
      const bob = await api.gateway.app.inject({
        method: 'GET',
        url: '/accounts',
        headers: { authorization: `Bearer ${await token.bob()}` },
      });
      assert.equal(bob.statusCode, 200);
      assert.equal(bob.headers['ratelimit-remaining'], '2');
      // Health and the API description are never limited.
      for (let i = 0; i < 5; i++) {
        assert.equal((await api.gateway.app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200);
      }
    } finally {
      await api.close();
    }
  });

  it('refused tokens count too: a flood of forged tokens from one address is limited by the address', async () => {
    const api = await startBankApi({ rateLimit: { max: 3, timeWindowMs: 60_000 } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const forged = await signToken('a-guess-at-the-secret-32-characters', { sub: `guess-${i}`, roles: ['admin'] });
        const response = await api.gateway.app.inject({
          method: 'GET',
          url: '/accounts',
          headers: { authorization: `Bearer ${forged}` },
        });
        statuses.push(response.statusCode);
      }
      assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
      // Nor does a made-up X-Forwarded-For get an anonymous client a fresh budget: no proxy is trusted.
      const spoofed = await api.gateway.app.inject({
        method: 'GET',
        url: '/prices/BHP',
        headers: { 'x-forwarded-for': '203.0.113.77' },
      });
      assert.equal(spoofed.statusCode, 429);
    } finally {
      await api.close();
    }
  });

  it('two gateway instances sharing Redis enforce one limit', { skip: redisSkip }, async () => {
    const redis = new Redis(servers.redis.url);
    // Each run its own counters: the window outlives the test in Redis.
    const subject = `carol-${randomBytes(4).toString('hex')}`;
    const one = await startBankApi({ rateLimit: { max: 4, timeWindowMs: 60_000 }, redis });
    const two = await startBankApi({ rateLimit: { max: 4, timeWindowMs: 60_000 }, redis });
    try {
      const carol = `Bearer ${await signToken(SECRET, { sub: subject, roles: ['customer'], accounts: [] })}`;
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const api = i % 2 === 0 ? one : two;
        const response = await api.gateway.app.inject({
          method: 'GET',
          url: '/accounts',
          headers: { authorization: carol },
        });
        statuses.push(response.statusCode);
      }
      assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429], 'four in all across both instances');
      const keys = await redis.keys(`chassis-rate-limit:*${subject}*`);
      assert.ok(keys.length >= 1, 'the count lives in Redis');
    } finally {
      await Promise.all([one.close(), two.close()]);
      await redis.quit();
    }
  });
});
