import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cycleRatios, formatSpread, inverse, quantile, rotated, runSlice, spread, verdict } from './paired.ts';

/**
 * The paired slices' arithmetic — quartiles, per-cycle ratios, the rotating order — and one slice of
 * calls that answer after a timer, so that the slice's counting is seen end to end.
 */

describe('paired slices', () => {
  it('interpolates quantiles between neighbours', () => {
    assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
    assert.equal(quantile([1, 2, 3, 4, 5], 0.25), 2);
    assert.equal(quantile([7], 0.75), 7);
    assert.ok(Number.isNaN(quantile([], 0.5)));
  });

  it('gives the median and quartiles of the finite values, in any order', () => {
    assert.deepEqual(spread([5, 1, Number.NaN, 3, 2, 4]), { median: 3, q1: 2, q3: 4, count: 5, low: 1, high: 5 });
    assert.equal(spread([]).count, 0);
  });

  it("gives the median's 95 % interval from the order statistics", () => {
    const forty = Array.from({ length: 40 }, (_, i) => 40 - i);
    const { low, high } = spread(forty);
    assert.deepEqual([low, high], [14, 27]);
  });

  it('decides a goal only when the interval of the median is on one side of it', () => {
    const around = (median: number) => spread(Array.from({ length: 40 }, (_, i) => median + (i - 20) / 100));
    assert.equal(verdict(around(1.5), 1), 'met');
    assert.equal(verdict(around(0.5), 1), 'not met');
    assert.match(verdict(around(1.01), 1), /^met by the median, undecided at 95 %/);
    assert.match(verdict(around(0.99), 1), /^not met by the median, undecided/);
  });

  it('inverts a spread, quartiles and interval swapping ends', () => {
    const s = inverse(spread([1, 2, 4, 5, 10]));
    assert.equal(s.median, 1 / 4);
    assert.equal(s.q1, 1 / 5);
    assert.equal(s.q3, 1 / 2);
  });

  it('divides each cycle by the baseline of the same cycle', () => {
    assert.deepEqual(cycleRatios([2, 3, 8], [1, 3, 4]), [2, 1, 2]);
    assert.ok(Number.isNaN(cycleRatios([1, 2], [1])[1]!));
  });

  it('formats a spread as its median and quartiles', () => {
    assert.equal(
      formatSpread({ median: 1.024, q1: 0.97, q3: 1.081, count: 40, low: 0.99, high: 1.05 }),
      '1.02× (0.97–1.08)',
    );
    assert.equal(formatSpread(spread([])), 'n/a');
  });

  it('rotates the order by one each cycle, so each goes first in turn', () => {
    const order = ['a', 'b', 'c'];
    assert.deepEqual(rotated(order, 0), ['a', 'b', 'c']);
    assert.deepEqual(rotated(order, 1), ['b', 'c', 'a']);
    assert.deepEqual(rotated(order, 5), ['c', 'a', 'b']);
    assert.deepEqual(rotated([], 3), []);
  });

  it('counts the calls that end in the window, and returns only once every call has ended', async () => {
    let inFlight = 0;
    let started = 0;
    const call = async () => {
      inFlight++;
      started++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight--;
    };
    let flushed = false;
    const slice = await runSlice(call, 4, {
      sliceMs: 100,
      rampMs: 10,
      flush: () => {
        flushed = true;
      },
    });
    assert.equal(inFlight, 0);
    assert.ok(flushed);
    assert.equal(slice.answered, started);
    assert.ok(slice.calls > 0 && slice.calls < slice.answered, `${slice.calls} of ${slice.answered} counted`);
    assert.equal(slice.latenciesNs.length, slice.calls);
    // Timers keep the loop's cached clock and may fire a fraction of a millisecond early; a loaded
    // machine may fire them late.
    assert.ok(slice.seconds > 0.095 && slice.seconds < 1, `a window of ${slice.seconds} s`);
    assert.ok(slice.settled);
    assert.equal(slice.errors, 0);
  });
});
