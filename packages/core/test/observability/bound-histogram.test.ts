import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NodeMetrics, PolicyEngine } from '@chassis/core';
import { Histogram, Registry } from 'prom-client';

const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// On a bound, between bounds, above the last: every way a value meets the buckets.
const seconds = [0.0001, 0.001, 0.003, 0.01, 0.07, 0.5, 4, 10, 12, 0.0004];

/** The lines of a histogram in a registry's text, for one metric. */
async function linesOf(registry: Registry, name: string): Promise<string[]> {
  return (await registry.metrics()).split('\n').filter((line) => line.startsWith(name));
}

describe('node histograms: each label set bound once, the same text as prom-client’s own observe', () => {
  it('server, client and event histograms count as prom-client does, and start again after a reset', async () => {
    const metrics = new NodeMetrics(new PolicyEngine(undefined, {}), { defaultMetrics: false });
    const reference = new Registry();
    const server = new Histogram({
      name: 'chassis_rpc_server_duration_seconds',
      help: 'reference',
      labelNames: ['service', 'action', 'outcome'],
      buckets,
      registers: [reference],
    });
    const client = new Histogram({
      name: 'chassis_rpc_client_duration_seconds',
      help: 'reference',
      labelNames: ['target', 'outcome'],
      buckets,
      registers: [reference],
    });
    const events = new Histogram({
      name: 'chassis_event_handler_duration_seconds',
      help: 'reference',
      labelNames: ['service', 'subscription', 'event', 'outcome'],
      buckets,
      registers: [reference],
    });
    for (const [i, value] of seconds.entries()) {
      const outcome = i % 3 === 0 ? 'TIMEOUT' : 'ok';
      metrics.observeServer('ledger', 'reserve', outcome, value);
      server.observe({ service: 'ledger', action: 'reserve', outcome }, value);
      metrics.observeClient('ledger.reserve', outcome, value);
      client.observe({ target: 'ledger.reserve', outcome }, value);
      metrics.observeEvent('market', 'market.place', 'orders.created', outcome, value);
      events.observe({ service: 'market', subscription: 'market.place', event: 'orders.created', outcome }, value);
    }
    for (const name of [
      'chassis_rpc_server_duration_seconds',
      'chassis_rpc_client_duration_seconds',
      'chassis_event_handler_duration_seconds',
    ]) {
      assert.deepEqual(await linesOf(metrics.registry, name), await linesOf(reference, name), name);
    }

    metrics.registry.resetMetrics();
    metrics.observeServer('ledger', 'reserve', 'ok', 0.002);
    const text = await metrics.text();
    assert.match(
      text,
      /chassis_rpc_server_duration_seconds_count\{service="ledger",action="reserve",outcome="ok"\} 1\n/,
    );
    assert.match(
      text,
      /chassis_rpc_server_duration_seconds_bucket\{le="0.0025",service="ledger",action="reserve",outcome="ok"\} 1\n/,
    );
    assert.doesNotMatch(text, /outcome="TIMEOUT"/, 'the reset emptied the histogram');
  });
});
