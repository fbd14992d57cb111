import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseServerTotals, RedHistory } from '../src/metrics.ts';

/** The RED history the Health view draws, from two readings of a node's /metrics. */

const reading = (
  ok: number,
  failed: number,
  seconds: number,
) => `# HELP chassis_rpc_server_duration_seconds Time to handle a request
# TYPE chassis_rpc_server_duration_seconds histogram
chassis_rpc_server_duration_seconds_bucket{service="orders",action="sellShares",outcome="ok",le="0.005"} ${ok}
chassis_rpc_server_duration_seconds_sum{service="orders",action="sellShares",outcome="ok"} ${seconds}
chassis_rpc_server_duration_seconds_count{service="orders",action="sellShares",outcome="ok"} ${ok}
chassis_rpc_server_duration_seconds_sum{service="orders",action="sellShares",outcome="VALIDATION"} 0
chassis_rpc_server_duration_seconds_count{service="orders",action="sellShares",outcome="VALIDATION"} ${failed}
chassis_rpc_client_duration_seconds_count{target="market-data.getPrice",outcome="ok"} 99
`;

describe('RED figures from /metrics', () => {
  it('adds up the outcomes of each action; other series are left out', () => {
    const totals = parseServerTotals(reading(10, 2, 0.5));
    assert.deepEqual([...totals.keys()], ['orders.sellShares']);
    assert.deepEqual(totals.get('orders.sellShares'), { count: 12, errors: 2, sumSeconds: 0.5 });
  });

  it('turns successive totals into rates, errors and mean durations per interval', () => {
    const history = new RedHistory(2);
    history.add('n1', 0, parseServerTotals(reading(10, 2, 0.5)));
    assert.deepEqual(history.list(), [], 'one reading has no interval yet');
    history.add('n1', 2_000, parseServerTotals(reading(18, 4, 1.5)));
    history.add('n1', 4_000, parseServerTotals(reading(18, 4, 1.5)));
    const [series] = history.list();
    assert.equal(series?.action, 'orders.sellShares');
    assert.deepEqual(
      series?.points.map(({ rate, errors, meanMs }) => ({ rate, errors, meanMs })),
      [
        { rate: 5, errors: 1, meanMs: 100 },
        { rate: 0, errors: 0, meanMs: null },
      ],
    );
    // A restarted node counts from zero again: that interval is left out rather than drawn negative.
    history.add('n1', 6_000, parseServerTotals(reading(1, 0, 0.01)));
    assert.equal(history.list()[0]?.points.length, 2, 'kept to its size, the restart not added');
  });
});
