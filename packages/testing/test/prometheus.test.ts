import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type LivePrometheus, skipUnlessInstalled, startPrometheus, waitUntil } from '../src/index.ts';

describe('startPrometheus: a real Prometheus scraping the given ops ports with the given rules', {
  skip: skipUnlessInstalled('prometheus', 'Debian: apt-get install prometheus'),
  timeout: 60_000,
}, () => {
  let prometheus: LivePrometheus | undefined;
  let target: Server | undefined;
  let dir = '';
  const logs: string[] = [];

  before(async () => {
    // A process's /metrics, as a node's ops port serves it.
    target = createServer((_request, response) => {
      response.setHeader('content-type', 'text/plain; version=0.0.4');
      response.end('# TYPE testing_up gauge\ntesting_up 1\n');
    });
    await new Promise<void>((resolve) => target!.listen(0, '127.0.0.1', resolve));
    dir = await mkdtemp(join(tmpdir(), 'testing-prometheus-rules-'));
    await writeFile(
      join(dir, 'testing.yml'),
      'groups:\n  - name: testing\n    rules:\n      - alert: TestingDown\n        expr: testing_up == 0\n',
    );
    prometheus = await startPrometheus({
      targets: [{ instance: 'orders-2', port: (target.address() as AddressInfo).port }],
      ruleFiles: [join(dir, '*.yml')],
      log: (line) => logs.push(line),
    });
  });

  after(async () => {
    await prometheus?.stop();
    target?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is ready when started; scrapes the target on job chassis, its group the instance without -<n>', async () => {
    const missing = await prometheus!.withoutData([{ where: 'up', expr: 'testing_up{job="chassis"}' }]);
    assert.deepEqual(missing, [], logs.join('\n'));
    const answer = await prometheus!.query('testing_up');
    assert.equal(answer.status, 'success');
    assert.deepEqual(
      answer.data?.result.map(({ metric }) => [metric.instance, metric.group]),
      [['orders-2', 'orders']],
    );
  });

  it('withoutData names each query with no data or that fails, as written, after its timeout', async () => {
    const missing = await prometheus!.withoutData(
      [
        { where: 'absent', expr: 'no_such_metric' },
        { where: 'broken', expr: 'rate(testing_up[$__rate_interval' },
        { where: 'rewritten', expr: 'testing_up[$__rate_interval]' },
      ],
      { rewrite: (expr) => expr.replace('[$__rate_interval]', ''), timeoutMs: 0 },
    );
    assert.equal(missing.length, 2);
    assert.equal(missing[0], 'absent: no data (no_such_metric)');
    assert.match(missing[1]!, /^broken: .+ \(rate\(testing_up\[\$__rate_interval\)$/);
  });

  it('loads the rule files and evaluates their rules', async () => {
    await waitUntil(
      async () => (await prometheus!.ruleGroups()).some((group) => !group.rules[0]!.lastEvaluation.startsWith('0001')),
      { timeoutMs: 10_000, intervalMs: 200, what: 'the rule to be evaluated' },
    );
    const groups = await prometheus!.ruleGroups();
    assert.deepEqual(
      groups.map((group) => [group.name, group.rules.map((rule) => [rule.name, rule.health])]),
      [['testing', [['TestingDown', 'ok']]]],
    );
  });

  it('stop ends it', async () => {
    const other = await startPrometheus({ targets: [], ruleFiles: [] });
    assert.equal((await other.query('vector(1)')).status, 'success');
    await other.stop();
    await assert.rejects(fetch(`${other.url}/-/ready`));
  });
});
