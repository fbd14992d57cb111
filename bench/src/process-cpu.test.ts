import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readMachineTicks, stealShareBetween } from './process-cpu.ts';

describe('the machine’s steal', () => {
  it('is the share of the CPU time between two readings that the hypervisor took', () => {
    assert.equal(stealShareBetween({ total: 1000, steal: 10 }, { total: 2000, steal: 260 }), 0.25);
    assert.equal(stealShareBetween({ total: 1000, steal: 10 }, { total: 1400, steal: 10 }), 0);
  });

  it('is NaN where it cannot be told: a reading missing, or no time between them', () => {
    assert.ok(Number.isNaN(stealShareBetween(undefined, { total: 10, steal: 1 })));
    assert.ok(Number.isNaN(stealShareBetween({ total: 10, steal: 1 }, { total: 10, steal: 1 })));
  });

  it('reads this machine’s ticks from /proc/stat, where there is one, steal within the total and both growing', () => {
    const first = readMachineTicks();
    if (process.platform !== 'linux') return assert.equal(first, undefined);
    assert.ok(first && first.total > 0 && first.steal >= 0 && first.steal <= first.total);
    const spin = Date.now() + 30;
    while (Date.now() < spin);
    const second = readMachineTicks();
    assert.ok(second && second.total >= first.total && second.steal >= first.steal);
  });
});
