import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signToken } from '@chassis/core';
import { type Simplebank, startSimplebank } from '../src/system.ts';

/**
 * The dark launch of deploy/kubernetes: the feature flag `quote-age` (OpenFeature, set by
 * `CHASSIS_FLAG_QUOTE_AGE` in an overlay's ConfigMap — on for the canary, off in production) adds
 * `ageMs` to the prices the gateway answers. Off, or unset, the answer is exactly as before.
 * A node with market data only opens no database: these banks start in a moment.
 */
async function bankWith(flag: string | undefined): Promise<Simplebank> {
  return startSimplebank({
    port: 0,
    env: {
      SERVICES: 'market-data',
      OPS_PORT: 'off',
      LOG_LEVEL: 'silent',
      ...(flag === undefined ? {} : { CHASSIS_FLAG_QUOTE_AGE: flag }),
    },
  });
}

async function getPrices(bank: Simplebank, path: string): Promise<unknown> {
  const token = await signToken(bank.secret, { sub: 'alice', roles: ['customer'] });
  const response = await fetch(`${bank.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

describe('SimpleBank feature flag quote-age: prices say how old they are only when it is on', () => {
  const banks: Record<'on' | 'off' | 'unset', Simplebank | undefined> = {
    on: undefined,
    off: undefined,
    unset: undefined,
  };
  before(async () => {
    banks.on = await bankWith('true');
    banks.off = await bankWith('false');
    banks.unset = await bankWith(undefined);
  });
  after(async () => {
    for (const bank of Object.values(banks)) await bank?.stop();
  });

  it('on (the canary): GET /prices/BHP and GET /prices carry ageMs, the age of the exchange time', async () => {
    const quote = (await getPrices(banks.on!, '/prices/BHP')) as { at: string; ageMs?: number };
    assert.equal(typeof quote.ageMs, 'number', JSON.stringify(quote));
    const sinceQuote = Date.now() - Date.parse(quote.at);
    assert.ok(quote.ageMs! >= 0 && quote.ageMs! <= sinceQuote, `ageMs ${quote.ageMs} within 0..${sinceQuote}`);
    const all = (await getPrices(banks.on!, '/prices')) as { ageMs?: number }[];
    assert.ok(all.length > 0 && all.every((price) => typeof price.ageMs === 'number'), JSON.stringify(all));
  });

  it('off (production) and unset (the default): no ageMs anywhere', async () => {
    for (const bank of [banks.off!, banks.unset!]) {
      const quote = (await getPrices(bank, '/prices/BHP')) as Record<string, unknown>;
      assert.deepEqual(Object.keys(quote).sort(), ['at', 'price', 'symbol']);
      const all = (await getPrices(bank, '/prices')) as Record<string, unknown>[];
      assert.ok(all.length > 0 && all.every((price) => !('ageMs' in price)), JSON.stringify(all));
    }
  });
});
