import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  action,
  type ChassisNode,
  createNode,
  defineService,
  handle,
  MemoryBroker,
  memoryTransport,
} from '@chassis/core';
import { freePort, skipUnlessInstalled, waitUntil } from '@chassis/testing';
import { z } from 'zod';

const getPrice = action('market-data.getPrice', {
  input: z.object({ symbol: z.string() }),
  output: z.object({ price: z.string() }),
  idempotent: true,
});

describe('a real Prometheus server scrapes a running node', {
  skip: skipUnlessInstalled('prometheus', 'apt-get install prometheus'),
  timeout: 60_000,
}, () => {
  let node: ChassisNode;
  let prometheus: ChildProcess;
  let apiPort: number;
  const dir = mkdtempSync(join(tmpdir(), 'chassis-prometheus-'));

  before(async () => {
    node = createNode({
      services: [defineService({ name: 'market-data', actions: [handle(getPrice, () => ({ price: '91.72' }))] })],
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logLevel: 'silent',
      opsPort: 0,
    });
    await node.start();
    for (let i = 0; i < 3; i++) await node.call(getPrice, { symbol: 'BHP' });
    apiPort = await freePort();
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global: { scrape_interval: 1s }\nscrape_configs:\n  - job_name: chassis\n    static_configs: [{ targets: ['127.0.0.1:${node.opsPort}'] }]\n`,
    );
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${apiPort}`,
      ],
      { stdio: 'ignore' },
    );
  });

  after(async () => {
    prometheus?.kill('SIGTERM');
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function query(promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const response = await fetch(`http://127.0.0.1:${apiPort}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await response.json()) as { status: string; data: { result: [] } };
    return body.status === 'success' ? body.data.result : [];
  }

  it('finds the target up and reads the request histogram', async () => {
    await waitUntil(
      () =>
        query('up{job="chassis"}').then(
          (r) => r[0]?.value[1] === '1',
          () => false,
        ),
      { timeoutMs: 40_000, intervalMs: 500, what: 'Prometheus to scrape the node' },
    );
    const counts = await query('chassis_rpc_server_duration_seconds_count{action="getPrice",outcome="ok"}');
    assert.equal(counts.length, 1);
    assert.equal(counts[0]?.metric.service, 'market-data');
    assert.equal(counts[0]?.value[1], '3');
    const p99 = await query('histogram_quantile(0.99, sum by (le) (chassis_rpc_server_duration_seconds_bucket))');
    assert.ok(Number(p99[0]?.value[1]) > 0, 'a p99 can be computed from the buckets');
  });
});
