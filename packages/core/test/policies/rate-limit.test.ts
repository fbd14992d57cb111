import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TokenBucket } from '../../src/policies/rate-limit.ts';

function bucketAt(options: { perSecond: number; burst?: number }) {
  let now = 7_000_000;
  const bucket = new TokenBucket(options, () => now);
  return {
    bucket,
    advance(ms: number) {
      now += ms;
    },
    /** Takes tokens until one is refused; how many were granted. */
    drain() {
      let granted = 0;
      while (bucket.take() === 0) granted++;
      return granted;
    },
  };
}

describe('rate limit (token bucket)', () => {
  it('burst defaults to one second of tokens, and to at least one', () => {
    assert.equal(new TokenBucket({ perSecond: 5 }).burst, 5);
    assert.equal(new TokenBucket({ perSecond: 0.5 }).burst, 1);
    assert.equal(new TokenBucket({ perSecond: 1 }).burst, 1);
    assert.equal(new TokenBucket({ perSecond: 5, burst: 2 }).burst, 2);
  });

  it('starts full: a burst of `burst` is granted at once, the next is refused', () => {
    const b = bucketAt({ perSecond: 2, burst: 3 });
    assert.equal(b.drain(), 3);
  });

  it('a refusal says how long until the next token, rounded up', () => {
    const b = bucketAt({ perSecond: 2, burst: 1 });
    assert.equal(b.bucket.take(), 0);
    assert.equal(b.bucket.take(), 500);
    b.advance(200);
    assert.equal(b.bucket.take(), 300);
    const third = bucketAt({ perSecond: 3, burst: 1 });
    third.bucket.take();
    assert.equal(third.bucket.take(), 334, '333.3 ms rounds up');
  });

  it('a refusal takes nothing: the token comes when it said it would', () => {
    const b = bucketAt({ perSecond: 2, burst: 1 });
    b.bucket.take();
    for (let i = 0; i < 5; i++) assert.equal(b.bucket.take(), 500);
    b.advance(499);
    assert.ok(b.bucket.take() > 0);
    b.advance(1);
    assert.equal(b.bucket.take(), 0, 'exactly one token after 500 ms at 2 per second');
  });

  it('refills continuously at perSecond', () => {
    const b = bucketAt({ perSecond: 10, burst: 10 });
    b.drain();
    b.advance(350);
    assert.equal(b.drain(), 3);
  });

  it('refills no further than burst, however long it was quiet', () => {
    const b = bucketAt({ perSecond: 10, burst: 4 });
    b.drain();
    b.advance(60_000);
    assert.equal(b.drain(), 4);
  });

  it('sustains perSecond over time', () => {
    const b = bucketAt({ perSecond: 5, burst: 1 });
    let granted = 0;
    for (let ms = 0; ms < 10_000; ms += 10) {
      if (b.bucket.take() === 0) granted++;
      b.advance(10);
    }
    assert.ok(granted >= 50 && granted <= 51, `${granted} in 10 s at 5 per second`);
  });
});
