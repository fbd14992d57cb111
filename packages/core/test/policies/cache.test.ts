import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { cacheKey, MemoryCacheStore } from '../../src/policies/cache.ts';

const sha1 = (text: string) => createHash('sha1').update(text).digest('base64url');

describe('response cache', () => {
  describe('cacheKey', () => {
    it('the same input with its keys in any order, at any depth, has the same key', () => {
      assert.equal(
        cacheKey('md.getPrice', { symbol: 'BHP', venue: { mic: 'XASX', board: 'main' } }),
        cacheKey('md.getPrice', { venue: { board: 'main', mic: 'XASX' }, symbol: 'BHP' }),
      );
      assert.equal(
        cacheKey('md.getPrices', { list: [{ b: 1, a: 2 }] }),
        cacheKey('md.getPrices', { list: [{ a: 2, b: 1 }] }),
      );
    });

    it('is the action and a hash of canonical JSON: keys sorted, undefined left out', () => {
      // Instances sharing a Redis cache must agree on keys, across releases too: the form is pinned.
      const input = { z: [1, { y: 2, x: [3, 'a'] }], a: 's', u: undefined, n: null, t: true };
      assert.equal(
        cacheKey('md.getPrice', input),
        `chassis:cache:md.getPrice:${sha1('{"a":"s","n":null,"t":true,"z":[1,{"x":[3,"a"],"y":2}]}')}`,
      );
      // Keys are ordered by code unit, not by locale: capitals first, accents last.
      assert.equal(
        cacheKey('a.b', { é: 1, z: 2, Z: 3, a10: 4, a9: 5 }),
        `chassis:cache:a.b:${sha1('{"Z":3,"a10":4,"a9":5,"z":2,"é":1}')}`,
      );
      assert.equal(cacheKey('a.b', 'BHP'), `chassis:cache:a.b:${sha1('"BHP"')}`);
      assert.equal(cacheKey('a.b', 42), `chassis:cache:a.b:${sha1('42')}`);
      assert.equal(cacheKey('a.b', []), `chassis:cache:a.b:${sha1('[]')}`);
      assert.equal(cacheKey('a.b', {}), `chassis:cache:a.b:${sha1('{}')}`);
    });

    it('no input and null have the same key; undefined in an array is null, as in JSON', () => {
      assert.equal(cacheKey('a.b', undefined), `chassis:cache:a.b:${sha1('null')}`);
      assert.equal(cacheKey('a.b', null), cacheKey('a.b', undefined));
      assert.equal(cacheKey('a.b', [undefined, 1]), `chassis:cache:a.b:${sha1('[null,1]')}`);
      assert.equal(cacheKey('a.b', { x: 1, y: undefined }), cacheKey('a.b', { x: 1 }));
    });

    it('different inputs have different keys', () => {
      const keys = [
        cacheKey('a.b', { symbol: 'BHP' }),
        cacheKey('a.b', { symbol: 'RIO' }),
        cacheKey('a.b', { symbol: 'BHP', venue: 'XASX' }),
        cacheKey('a.b', { symbol: ['BHP'] }),
        cacheKey('a.b', [1, 2]),
        cacheKey('a.b', [2, 1]),
        cacheKey('a.b', '1'),
        cacheKey('a.b', 1),
        cacheKey('a.b', { 'a,b': 1 }),
        cacheKey('a.b', { a: ',b' }),
        cacheKey('a.c', { symbol: 'BHP' }),
      ];
      assert.equal(new Set(keys).size, keys.length);
    });
  });

  describe('MemoryCacheStore', () => {
    beforeEach(() => mock.timers.enable({ apis: ['Date'], now: 5_000_000 }));
    afterEach(() => mock.timers.reset());

    it('answers what was set while it is fresh, and nothing from the moment its TTL is up', async () => {
      const store = new MemoryCacheStore();
      assert.equal(await store.get('k'), undefined);
      await store.set('k', { price: '91.72' }, 100);
      mock.timers.tick(99);
      assert.deepEqual(await store.get('k'), { price: '91.72' });
      mock.timers.tick(1);
      assert.equal(await store.get('k'), undefined);
    });

    it('an expired entry is gone, not revived by the clock', async () => {
      const store = new MemoryCacheStore();
      await store.set('k', 1, 10);
      mock.timers.tick(10);
      assert.equal(await store.get('k'), undefined);
      await store.set('other', 2, 1000);
      assert.equal(await store.get('k'), undefined);
    });

    it('a later set replaces the value and its TTL', async () => {
      const store = new MemoryCacheStore();
      await store.set('k', 'old', 50);
      mock.timers.tick(40);
      await store.set('k', 'new', 50);
      mock.timers.tick(40);
      assert.equal(await store.get('k'), 'new');
    });

    it('keeps copies: neither the setter nor a reader can change what the next reader gets', async () => {
      const store = new MemoryCacheStore();
      const value = { prices: [1, 2] };
      await store.set('k', value, 1000);
      value.prices.push(3);
      const read = (await store.get('k')) as { prices: number[] };
      assert.deepEqual(read, { prices: [1, 2] });
      read.prices.push(4);
      assert.deepEqual(await store.get('k'), { prices: [1, 2] });
    });

    it('holds at most maxEntries, letting the least recently used go first', async () => {
      const store = new MemoryCacheStore(2);
      await store.set('a', 1, 1000);
      await store.set('b', 2, 1000);
      await store.get('a');
      await store.set('c', 3, 1000);
      assert.equal(await store.get('b'), undefined, 'b was the least recently used');
      assert.equal(await store.get('a'), 1);
      assert.equal(await store.get('c'), 3);
    });

    it('setting a key again counts as a use', async () => {
      const store = new MemoryCacheStore(2);
      await store.set('a', 1, 1000);
      await store.set('b', 2, 1000);
      await store.set('a', 10, 1000);
      await store.set('c', 3, 1000);
      assert.equal(await store.get('b'), undefined);
      assert.equal(await store.get('a'), 10);
    });

    it('holds exactly maxEntries before evicting', async () => {
      const store = new MemoryCacheStore(3);
      for (const key of ['a', 'b', 'c']) await store.set(key, key, 1000);
      for (const key of ['a', 'b', 'c']) assert.equal(await store.get(key), key);
    });

    it('holds ten thousand by default', async () => {
      const store = new MemoryCacheStore();
      for (let i = 0; i <= 10_000; i++) await store.set(`k${i}`, i, 1000);
      assert.equal(await store.get('k0'), undefined);
      assert.equal(await store.get('k1'), 1);
      assert.equal(await store.get('k10000'), 10_000);
    });
  });
});
