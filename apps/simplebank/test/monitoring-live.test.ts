import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  freePort,
  postgresTarget,
  requestJson,
  servers,
  skipUnlessInstalled,
  skipUnlessUp,
  waitUntil,
} from '@chassis/testing';
import { type DistributedSimplebank, distributedTopology, launchDistributed } from '../src/launcher.ts';
import { removeBrokerState } from './broker.ts';
import {
  type PanelQuery,
  panelQueries,
  ruleExpressions,
  rulesDir,
  variableQueries,
  withGrafanaVariables,
} from './monitoring.ts';

/**
 * The dashboards and rules of deploy/monitoring against the real thing: the distributed SimpleBank (its
 * processes over NATS and PostgreSQL, as launchDistributed starts them), a real Prometheus scraping every
 * process's ops port each second with the rule files loaded, and orders placed through the gateway. Every
 * panel's query and every dashboard variable must return data; every rule must evaluate.
 */

interface Sample {
  metric: Record<string, string>;
}
interface Answer {
  status: string;
  error?: string;
  data?: { result: Sample[] };
}

const postgres = await postgresTarget();
const skip =
  postgres.skip ||
  (await skipUnlessUp('nats')) ||
  skipUnlessInstalled('prometheus', 'Debian: apt-get install prometheus');

describe('a real Prometheus scraping the distributed SimpleBank: every dashboard panel has data, every rule evaluates', {
  skip,
  timeout: 120_000,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'chassis-monitoring-'));
  const logs: string[] = [];
  let bank: DistributedSimplebank | undefined;
  let prometheus: ChildProcess | undefined;
  let prometheusUrl = '';
  let placing: Promise<void> | undefined;
  let stopPlacing = false;

  async function query(expr: string): Promise<Answer> {
    const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await response.json()) as Answer;
  }

  before(async () => {
    await removeBrokerState(servers.nats.url);
    const databaseUrl = await postgres.newDatabase();
    const opsPorts: Record<string, number> = {};
    for (const spec of distributedTopology()) opsPorts[spec.name] = await freePort();
    // Prometheus starts first, with the ports the processes will serve on: it scrapes them as they come up.
    const prometheusPort = await freePort();
    prometheusUrl = `http://127.0.0.1:${prometheusPort}`;
    const targets = Object.entries(opsPorts).map(
      ([name, port]) =>
        `      - targets: ['127.0.0.1:${port}']\n        labels: { instance: ${name}, group: ${name.replace(/-\d+$/, '')} }`,
    );
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: ['${rulesDir}/*.yml']`,
        'scrape_configs:',
        '  - job_name: chassis',
        '    static_configs:',
        ...targets,
        '',
      ].join('\n'),
    );
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${prometheusPort}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prometheus.stderr?.on('data', (chunk: Buffer) => logs.push(`[prometheus] ${chunk.toString().trim()}`));
    bank = await launchDistributed({
      transport: servers.nats.url,
      databaseUrl,
      opsPorts,
      port: await freePort(),
      exchangePort: await freePort(),
      logLevel: 'warn',
      output: (line) => logs.push(line),
    });
    const url = bank.url;
    const login = await requestJson(url, 'POST', '/auth/token', { username: 'alice', password: 'alice-password' });
    const token = String(login.body.access_token);
    // Orders keep coming while Prometheus scrapes, so that every rate has a rise to see: sells and buys
    // of 1 BHP that complete, a sell of more than alice holds (refused by the ledger) and one with bad input.
    const order = (path: string, body: unknown) => requestJson(url, 'POST', path, body, token);
    placing = (async () => {
      for (let round = 0; !stopPlacing; round++) {
        await order(round % 2 === 0 ? '/shares/sell' : '/shares/buy', { accountId: '101', symbol: 'BHP', quantity: 1 });
        if (round % 5 === 0) {
          await order('/shares/sell', { accountId: '101', symbol: 'BHP', quantity: 1_000_000 });
          await order('/shares/sell', { accountId: '101', symbol: 'bhp', quantity: -3 });
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    // Every process scraped and up, not only the first: Prometheus scrapes its targets at moments of their own.
    const processes = distributedTopology().length;
    await waitUntil(async () => (await query('up{job="chassis"} == 1')).data?.result.length === processes, {
      timeoutMs: 20_000,
      intervalMs: 500,
      what: 'Prometheus to scrape the SimpleBank processes',
    });
  });

  after(async () => {
    stopPlacing = true;
    await placing?.catch(() => undefined);
    await bank?.stop();
    prometheus?.kill('SIGTERM');
    await postgres.cleanup();
    await removeBrokerState(servers.nats.url).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  /** The queries that return nothing yet (or fail), each with why. */
  async function empty(queries: PanelQuery[]): Promise<string[]> {
    const answers = await Promise.all(queries.map(({ expr }) => query(withGrafanaVariables(expr))));
    return queries.flatMap(({ where, expr }, i) => {
      const answer = answers[i]!;
      if (answer.status !== 'success') return [`${where}: ${answer.error} (${expr})`];
      return answer.data?.result.length ? [] : [`${where}: no data (${expr})`];
    });
  }

  it('every process is scraped and up, on the job the rules and dashboards select', async () => {
    const up = await query('up{job="chassis"}');
    assert.deepEqual(
      up.data?.result.map((sample) => sample.metric.instance).sort(),
      distributedTopology()
        .map((spec) => spec.name)
        .sort(),
    );
  });

  it('every dashboard panel’s query, and every dashboard variable, returns data', async () => {
    // The chassis's dashboards and SimpleBank's (the News portal's has its own live test).
    const queries = [...panelQueries('simplebank'), ...variableQueries('simplebank')];
    assert.ok(queries.length >= 60, `${queries.length} queries`);
    let missing: string[] = [];
    // Some series appear only once orders have gone all the way through (completions, fees).
    await waitUntil(
      async () => {
        missing = await empty(queries);
        return missing.length === 0;
      },
      { timeoutMs: 30_000, intervalMs: 1000, what: 'every panel to have data' },
    ).catch(() => undefined);
    assert.deepEqual(missing, [], `panels without data:\n${missing.join('\n')}\n${logs.slice(-20).join('\n')}`);
  });

  it('every rule’s expression is valid PromQL over these series, and Prometheus evaluates every rule without error', async () => {
    // Every rule file, the News portal's too: an expression over series that are absent still evaluates.
    const rules = ruleExpressions();
    assert.equal(rules.length, 13);
    for (const { where, expr } of rules) {
      const answer = await query(expr);
      assert.equal(answer.status, 'success', `${where}: ${answer.error}`);
    }
    const loaded = (await (await fetch(`${prometheusUrl}/api/v1/rules`)).json()) as {
      data: {
        groups: {
          name: string;
          rules: { name: string; health: string; lastError?: string; lastEvaluation: string }[];
        }[];
      };
    };
    const evaluated = loaded.data.groups.flatMap((group) => group.rules);
    assert.equal(evaluated.length, rules.length);
    for (const rule of evaluated) {
      assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);
      assert.ok(!rule.lastEvaluation.startsWith('0001'), `${rule.name} has been evaluated`);
    }
  });
});
