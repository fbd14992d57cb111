import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChassisError, chassisError } from '../../src/errors.ts';
import { Bulkhead } from '../../src/policies/bulkhead.ts';

/** Work that runs until the test lets it go. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

describe('bulkhead', () => {
  it('runs maxConcurrent at once, queues maxQueued, refuses the next with BULKHEAD_FULL at once', async () => {
    const bulkhead = new Bulkhead('market-data.getPrice', { maxConcurrent: 2, maxQueued: 1 });
    const g = gate();
    const started: number[] = [];
    const work = (i: number) =>
      bulkhead.execute(async () => {
        started.push(i);
        await g.opened;
        return i;
      });
    const running = [work(0), work(1), work(2)];
    await Promise.resolve();
    assert.deepEqual(started, [0, 1]);
    assert.equal(bulkhead.inFlight, 2);
    assert.equal(bulkhead.queued, 1);
    const refused = await work(3).catch((e: unknown) => e);
    assert.ok(refused instanceof ChassisError);
    assert.equal(refused.code, 'BULKHEAD_FULL');
    assert.equal(refused.status, 503);
    assert.deepEqual(refused.data, { target: 'market-data.getPrice', maxConcurrent: 2, maxQueued: 1 });
    assert.match(refused.message, /market-data\.getPrice is at capacity: 2 running and 1 waiting/);
    assert.deepEqual(started, [0, 1], 'the refused work never ran');
    g.open();
    assert.deepEqual(await Promise.all(running), [0, 1, 2]);
    assert.deepEqual(started, [0, 1, 2]);
    assert.equal(bulkhead.inFlight, 0);
    assert.equal(bulkhead.queued, 0);
  });

  it('with no queue the first call beyond maxConcurrent is refused', async () => {
    const bulkhead = new Bulkhead('t', { maxConcurrent: 1, maxQueued: 0 });
    const g = gate();
    const first = bulkhead.execute(() => g.opened);
    await assert.rejects(
      bulkhead.execute(async () => 'second'),
      { code: 'BULKHEAD_FULL' },
    );
    g.open();
    await first;
    assert.equal(await bulkhead.execute(async () => 'third'), 'third');
  });

  it("the work's own errors pass through unchanged, and free the slot", async () => {
    const bulkhead = new Bulkhead('t', { maxConcurrent: 1, maxQueued: 0 });
    const error = chassisError('UNAVAILABLE', 'down');
    await assert.rejects(
      bulkhead.execute(async () => {
        throw error;
      }),
      (e: unknown) => e === error,
    );
    await assert.rejects(
      bulkhead.execute(async () => {
        throw new Error('plain');
      }),
      (e: unknown) => e instanceof Error && !(e instanceof ChassisError) && e.message === 'plain',
    );
    assert.equal(bulkhead.inFlight, 0);
    assert.equal(await bulkhead.execute(async () => 'ok'), 'ok');
  });
});
