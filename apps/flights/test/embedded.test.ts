import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { freePort, skipUnlessUp } from '@chassis/testing';
import { type FlightsSystem, startFlights } from '../src/system.ts';
import { apiClient } from './openapi-check.ts';
import { AA2532_MAY17, describeFlights } from './scenarios.ts';

/**
 * The embedded default: one process, the memory transport, the flights service on PGlite, the
 * reservations service on the local Redis (keys under a prefix of this run's own).
 */
describeFlights('embedded (one process, memory transport, PGlite, Redis)', await skipUnlessUp('redis'), async () => {
  const system = await startFlights({
    env: {
      CHASSIS_TRANSPORT: 'memory',
      DATABASE_URL: 'pglite://memory',
      REDIS_KEY_PREFIX: `test-flights-${randomBytes(4).toString('hex')}:`,
      PORT: '0',
      FLIGHTS_PORT: '0',
      RESERVATIONS_PORT: '0',
      OPS_PORT: 'off',
      // The races send hundreds of requests from one agent within the minute.
      RATE_LIMIT_PER_MINUTE: 'off',
      LOG_LEVEL: 'silent',
    },
  });
  return {
    url: system.url!,
    flightsUrl: system.flightsUrl!,
    reservationsUrl: system.reservationsUrl!,
    databaseKind: 'pglite',
    stop: system.stop,
  };
});

describe('embedded, with Redis down (and a low rate limit)', async () => {
  // A port nothing listens on: the reservations service starts anyway and answers 503 until Redis is back.
  const deadRedis = `redis://127.0.0.1:${await freePort()}`;
  let system: FlightsSystem;
  before(async () => {
    system = await startFlights({
      env: {
        CHASSIS_TRANSPORT: 'memory',
        DATABASE_URL: 'pglite://memory',
        REDIS_URL: deadRedis,
        RATE_LIMIT_PER_MINUTE: '3',
        PORT: '0',
        FLIGHTS_PORT: '0',
        RESERVATIONS_PORT: '0',
        OPS_PORT: 'off',
        LOG_LEVEL: 'silent',
      },
    });
  });
  after(() => system?.stop());

  test('the BFF and the reservations service answer 503, and the health check names Redis', async () => {
    const bff = apiClient('bff', system.url!);
    const reservations = apiClient('reservations', system.reservationsUrl!);
    const flights = apiClient('flights', system.flightsUrl!);
    const token = (await bff('POST', '/api/auth/token', { body: { username: 'flyer', password: 'flyer-password' } }))
      .body.access_token;
    const reserve = await bff('POST', '/api/reservations', {
      token,
      body: { flight_id: AA2532_MAY17, seat_num: '12C' },
    });
    assert.deepEqual([reserve.status, reserve.body.error.code], [503, 'UNAVAILABLE']);
    const seats = await bff('GET', '/api/flights/AA2532/seats?date=2027-05-17', { token });
    assert.equal(seats.status, 503);
    const put = await reservations('PUT', '/reservations', {
      body: { flight_id: AA2532_MAY17, customer_id: 'flyer', seat_num: '12C' },
    });
    assert.equal(put.status, 503);
    const health = await reservations('GET', '/health');
    assert.equal(health.status, 503);
    const check = health.body.checks['redis:responseTime'][0];
    assert.equal(check.status, 'fail');
    assert.match(check.output, /^redis: Redis cannot be reached/);
    // The BFF limits each caller (3 a minute here): flyer's fourth request is refused.
    const search = await bff('GET', '/api/flights/search?from=LAX&to=DCA&date=2027-05-17', { token });
    assert.equal(search.status, 503);
    const limited = await bff('GET', '/api/flights/search?from=LAX&to=DCA&date=2027-05-17', { token });
    assert.deepEqual([limited.status, limited.body.error.code], [429, 'RATE_LIMITED']);
    // The flights service does not depend on Redis.
    assert.equal((await flights('GET', '/health')).status, 200);
  });
});
