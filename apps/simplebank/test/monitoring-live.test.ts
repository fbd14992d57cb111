import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  freePort,
  type LivePrometheus,
  postgresTarget,
  requestJson,
  servers,
  skipUnlessInstalled,
  skipUnlessUp,
  startPrometheus,
  waitUntil,
} from '@chassis/testing';
import { type DistributedSimplebank, distributedTopology, launchDistributed } from '../src/launcher.ts';
import { removeBrokerState } from './broker.ts';
import { panelQueries, ruleExpressions, rulesDir, variableQueries, withGrafanaVariables } from './monitoring.ts';

/**
 * The dashboards and rules of deploy/monitoring against the real thing: the distributed SimpleBank (its
 * processes over NATS and PostgreSQL, as launchDistributed starts them), a real Prometheus scraping every
 * process's ops port each second with the rule files loaded, and orders placed through the gateway. Every
 * panel's query and every dashboard variable must return data; every rule must evaluate.
 */

const postgres = await postgresTarget();
const skip =
  postgres.skip ||
  (await skipUnlessUp('nats')) ||
  skipUnlessInstalled('prometheus', 'Debian: apt-get install prometheus');

describe('a real Prometheus scraping the distributed SimpleBank: every dashboard panel has data, every rule evaluates', {
  skip,
  timeout: 120_000,
}, () => {
  const logs: string[] = [];
  let bank: DistributedSimplebank | undefined;
  let prometheus: LivePrometheus | undefined;
  let placing: Promise<void> | undefined;
  let stopPlacing = false;
  const query = (expr: string) => prometheus!.query(expr);

  before(async () => {
    await removeBrokerState(servers.nats.url);
    const databaseUrl = await postgres.newDatabase();
    const opsPorts: Record<string, number> = {};
    for (const spec of distributedTopology()) opsPorts[spec.name] = await freePort();
    // Prometheus starts first, with the ports the processes will serve on: it scrapes them as they come up.
    prometheus = await startPrometheus({
      targets: Object.entries(opsPorts).map(([instance, port]) => ({ instance, port })),
      ruleFiles: [`${rulesDir}/*.yml`],
      log: (line) => logs.push(line),
    });
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
    await prometheus?.stop();
    await postgres.cleanup();
    await removeBrokerState(servers.nats.url).catch(() => undefined);
  });

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
    // Some series appear only once orders have gone all the way through (completions, fees).
    const missing = await prometheus!.withoutData(queries, { rewrite: (expr) => withGrafanaVariables(expr) });
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
    const evaluated = (await prometheus!.ruleGroups()).flatMap((group) => group.rules);
    assert.equal(evaluated.length, rules.length);
    for (const rule of evaluated) {
      assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);
      assert.ok(!rule.lastEvaluation.startsWith('0001'), `${rule.name} has been evaluated`);
    }
  });
});
