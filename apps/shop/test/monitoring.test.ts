import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { skipUnlessInstalled } from '@chassis/testing';
import { parse, stringify } from 'yaml';
import {
  chassisMonitoringDir,
  shopDashboard,
  shopDashboardQueries,
  shopMonitoringMetricNames,
  shopRuleExpressions,
  shopRulesDir,
} from './monitoring.ts';

/**
 * deploy/monitoring/shop checked by the tools that load it: promtool (the rules, their unit tests, and
 * every dashboard query parsed as PromQL), and the dashboard's shape beside the chassis's dashboards.
 * flow.ts checks that every metric they read is exported by a running Shop.
 */
const run = promisify(execFile);
const promtoolMissing = skipUnlessInstalled('promtool', 'Debian: apt-get install prometheus');

describe('The Shop’s Prometheus rules and Grafana dashboard', () => {
  it('the rules are valid and their promtool unit tests pass: each alert fires when it should and not otherwise', {
    skip: promtoolMissing,
  }, async () => {
    const checked = await run('promtool', ['check', 'rules', 'shop.yml'], { cwd: shopRulesDir });
    assert.match(checked.stdout, /SUCCESS: 3 rules found/);
    const tested = await run('promtool', ['test', 'rules', 'shop.test.yml'], { cwd: join(shopRulesDir, 'tests') });
    assert.match(tested.stdout, /SUCCESS/);
    assert.doesNotMatch(tested.stdout, /FAILED/);
    assert.equal(shopRuleExpressions().length, 3);
  });

  it('every alert has a unit test', () => {
    const alerts = (readFileSync(join(shopRulesDir, 'shop.yml'), 'utf8').match(/^\s*- alert: (\w+)$/gm) ?? []).map(
      (line) => line.replace(/.*alert: /, ''),
    );
    assert.equal(alerts.length, 3);
    const tested = readFileSync(join(shopRulesDir, 'tests', 'shop.test.yml'), 'utf8');
    for (const alert of alerts) assert.match(tested, new RegExp(`alertname: ${alert}$`, 'm'), `${alert} is tested`);
  });

  it('every dashboard query is PromQL promtool accepts (as a recording rule, Grafana’s $__rate_interval as 1m)', {
    skip: promtoolMissing,
  }, async () => {
    const queries = shopDashboardQueries();
    assert.ok(queries.length >= 17, `${queries.length} queries`);
    const dir = mkdtempSync(join(tmpdir(), 'shop-dashboard-promql-'));
    try {
      const rules = queries.map(({ expr }, index) => ({
        record: `shop:dashboard_query_${index}`,
        expr: expr.replaceAll('$__rate_interval', '1m'),
      }));
      writeFileSync(join(dir, 'queries.yml'), stringify({ groups: [{ name: 'dashboard', rules }] }));
      const checked = await run('promtool', ['check', 'rules', 'queries.yml'], { cwd: dir }).catch(
        (error: { stdout: string; stderr: string }) => assert.fail(`${error.stdout}${error.stderr}`),
      );
      assert.match(checked.stdout, new RegExp(`SUCCESS: ${queries.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the dashboard has its own uid, queries the provisioned datasource, covers orders, payments, the saga and RED per route', () => {
    const dashboard = shopDashboard();
    const chassisUids = readdirSync(join(chassisMonitoringDir, 'grafana', 'dashboards'))
      .filter((file) => file.endsWith('.json'))
      .map(
        (file) =>
          (
            JSON.parse(readFileSync(join(chassisMonitoringDir, 'grafana', 'dashboards', file), 'utf8')) as {
              uid: string;
            }
          ).uid,
      );
    assert.ok(!chassisUids.includes(dashboard.uid), `${dashboard.uid} is not a chassis dashboard's uid`);
    const datasources = parse(
      readFileSync(join(chassisMonitoringDir, 'grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8'),
    );
    const uid = datasources.datasources[0].uid;
    const panels = dashboard.panels.filter((panel) => panel.type !== 'row');
    assert.equal(new Set(dashboard.panels.map((panel) => panel.title)).size, dashboard.panels.length);
    for (const panel of panels) {
      assert.ok(panel.targets && panel.targets.length > 0, `${panel.title} has a query`);
      for (const target of panel.targets) assert.equal(target.datasource.uid, uid, panel.title);
      for (const target of panel.targets) {
        for (const [, name] of target.expr.matchAll(/\$(\w+)/g))
          assert.ok(name!.startsWith('__'), `${panel.title} uses $${name}`);
      }
    }
    const exprs = shopDashboardQueries()
      .map((query) => query.expr)
      .join('\n');
    for (const needed of [
      /shop_orders\b/,
      /shop_payments\{status=~"charged\|voided\|held"\}/,
      /chassis_saga_instances\{service="shop-orders"/,
      /node_requests_total/,
      /chassis_http_server_duration_seconds_bucket/,
      /status=~"5\.\."/,
    ]) {
      assert.match(exprs, needed);
    }
    assert.deepEqual(shopMonitoringMetricNames(), [
      'chassis_http_server_duration_seconds_bucket',
      'chassis_http_server_duration_seconds_count',
      'chassis_outbox_lag_seconds',
      'chassis_rpc_server_duration_seconds_count',
      'chassis_saga_instances',
      'chassis_saga_oldest_unfinished_seconds',
      'node_requests_total',
      'shop_orders',
      'shop_payments',
    ]);
  });
});
