import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { skipUnlessInstalled } from '@chassis/testing';
import { parse, stringify } from 'yaml';
import { dashboards, monitoringDir, panelQueries, prometheusDir, rulesDir } from './monitoring.ts';

/**
 * deploy/monitoring checked by the tools that will load it: promtool (Prometheus configs and rules, with
 * the rules' unit tests), amtool (Alertmanager), and the dashboards' and provisioning files' shapes.
 * monitoring-live.test.ts then runs every query against a real Prometheus scraping SimpleBank.
 */

const run = promisify(execFile);

describe('Prometheus rules and configs (promtool)', {
  skip: skipUnlessInstalled('promtool', 'Debian: apt-get install prometheus'),
}, () => {
  it('every rule file is valid, and its promtool unit tests pass: each alert fires when it should and not otherwise', async () => {
    const files = readdirSync(rulesDir).filter((file) => file.endsWith('.yml'));
    assert.ok(files.length > 0);
    const checked = await run('promtool', ['check', 'rules', ...files], { cwd: rulesDir });
    assert.deepEqual(files.sort(), ['chassis.yml', 'newsportal.yml']);
    assert.match(checked.stdout, /Checking chassis\.yml\n\s+SUCCESS: 11 rules found/);
    assert.match(checked.stdout, /Checking newsportal\.yml\n\s+SUCCESS: 2 rules found/);
    const tests = readdirSync(join(rulesDir, 'tests')).filter((file) => file.endsWith('.test.yml'));
    assert.ok(tests.length > 0);
    const tested = await run('promtool', ['test', 'rules', ...tests], { cwd: join(rulesDir, 'tests') });
    assert.match(tested.stdout, /SUCCESS/);
    assert.doesNotMatch(tested.stdout, /FAILED/);
  });

  it('every alert of the rules has a unit test', () => {
    const alerts = readdirSync(rulesDir)
      .filter((file) => file.endsWith('.yml'))
      .flatMap((file) => readFileSync(join(rulesDir, file), 'utf8').match(/^\s*- alert: (\w+)$/gm) ?? [])
      .map((line) => line.replace(/.*alert: /, ''));
    const tested = readdirSync(join(rulesDir, 'tests'))
      .map((file) => readFileSync(join(rulesDir, 'tests', file), 'utf8'))
      .join('\n');
    for (const alert of alerts) assert.match(tested, new RegExp(`alertname: ${alert}$`, 'm'), `${alert} is tested`);
  });

  it('the Compose config is valid, loads the rules and scrapes every process of the topology on its ops port', async () => {
    const checked = await run('promtool', ['check', 'config', 'prometheus.yml'], { cwd: prometheusDir });
    assert.match(checked.stdout, /SUCCESS: prometheus\.yml is valid/);
    assert.match(checked.stdout, /SUCCESS: 11 rules found/);
    assert.match(checked.stdout, /SUCCESS: 2 rules found/);
    const config = parse(readFileSync(join(prometheusDir, 'prometheus.yml'), 'utf8'));
    const chassis = config.scrape_configs.find((job: { job_name: string }) => job.job_name === 'chassis');
    const targets = chassis.static_configs.flatMap((group: { targets: string[] }) => group.targets).sort();
    const { distributedTopology } = await import('../src/launcher.ts');
    assert.deepEqual(
      targets,
      distributedTopology()
        .map((spec) => `${spec.name}:9400`)
        .sort(),
    );
    assert.deepEqual(config.alerting.alertmanagers[0].static_configs[0].targets, ['alertmanager:9093']);
  });

  it('the Kubernetes config is valid, finds the app’s pods by their part-of label and scrapes their `ops` port', async () => {
    const text = readFileSync(join(prometheusDir, 'prometheus.kubernetes.yml'), 'utf8');
    const config = parse(text);
    const chassis = config.scrape_configs.find((job: { job_name: string }) => job.job_name === 'chassis');
    assert.deepEqual(chassis.kubernetes_sd_configs, [{ role: 'pod' }]);
    const keeps = chassis.relabel_configs.filter((rule: { action?: string }) => rule.action === 'keep');
    assert.deepEqual(
      keeps.map((rule: { source_labels: string[]; regex: string }) => [rule.source_labels[0], rule.regex]),
      [
        ['__meta_kubernetes_pod_labelpresent_app_kubernetes_io_part_of', 'true'],
        ['__meta_kubernetes_pod_container_port_name', 'ops'],
      ],
    );
    for (const rule of chassis.relabel_configs as { source_labels: string[] }[]) {
      for (const label of rule.source_labels) assert.match(label, /^__meta_kubernetes_(pod|namespace)/);
    }
    const checked = await run('promtool', ['check', 'config', 'prometheus.kubernetes.yml'], {
      cwd: prometheusDir,
    }).catch((error: { stdout: string; stderr: string }) => error);
    if (/field kubernetes_sd_configs not found/.test(`${checked.stdout}${checked.stderr}`)) {
      // Debian builds Prometheus without Kubernetes discovery. Everything else — relabelling, rule files,
      // alerting — is still checked by promtool, with the discovery swapped for a file one of the same shape.
      const dir = mkdtempSync(join(tmpdir(), 'chassis-prometheus-k8s-'));
      try {
        chassis.file_sd_configs = [{ files: ['targets.json'] }];
        delete chassis.kubernetes_sd_configs;
        writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
        symlinkSync(rulesDir, join(dir, 'rules'));
        const swapped = await run('promtool', ['check', 'config', 'prometheus.yml'], { cwd: dir });
        assert.match(swapped.stdout, /SUCCESS: prometheus\.yml is valid/);
        assert.match(swapped.stdout, /SUCCESS: 11 rules found/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } else {
      assert.match(checked.stdout, /SUCCESS: prometheus\.kubernetes\.yml is valid/);
    }
  });
});

describe('Alertmanager config (amtool)', {
  skip: skipUnlessInstalled('amtool', 'Debian: apt-get install prometheus-alertmanager'),
}, () => {
  it('is valid and sends every alert, resolved ones too, to the alerts service’s webhook on the gateway', async () => {
    const file = join(monitoringDir, 'alertmanager', 'alertmanager.yml');
    const checked = await run('amtool', ['check-config', file]);
    assert.match(checked.stdout, /SUCCESS/);
    const config = parse(readFileSync(file, 'utf8'));
    const receivers = new Map(config.receivers.map((r: { name: string }) => [r.name, r]));
    const routed = [config.route.receiver, ...config.route.routes.map((r: { receiver: string }) => r.receiver)];
    for (const name of routed) {
      const receiver = receivers.get(name) as { webhook_configs: { url: string; send_resolved: boolean }[] };
      assert.deepEqual(
        receiver.webhook_configs.map((hook) => [new URL(hook.url).pathname, hook.send_resolved]),
        [['/alerts', true]],
      );
    }
  });
});

describe('Grafana dashboards and provisioning', () => {
  it('every dashboard parses, has a unique uid, and every panel’s query names the provisioned datasource', () => {
    const found = dashboards();
    assert.deepEqual(found.map(({ file }) => file).sort(), [
      'newsportal.json',
      'node-runtime.json',
      'outbox-sagas.json',
      'place-order.json',
      'queues.json',
      'resilience.json',
      'service-red.json',
    ]);
    assert.equal(new Set(found.map(({ dashboard }) => dashboard.uid)).size, found.length);
    const datasources = parse(
      readFileSync(join(monitoringDir, 'grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8'),
    );
    const uid = datasources.datasources[0].uid;
    for (const { file, dashboard } of found) {
      const withQueries = dashboard.panels.filter((panel) => panel.type !== 'row');
      assert.ok(withQueries.length > 0, file);
      for (const panel of withQueries) {
        assert.ok(panel.targets && panel.targets.length > 0, `${file} › ${panel.title} has a query`);
        for (const target of panel.targets) assert.equal(target.datasource.uid, uid, `${file} › ${panel.title}`);
      }
      // A variable a query uses must be defined on its dashboard (Grafana's own start with `__`).
      const defined = new Set(dashboard.templating.list.map((variable) => variable.name));
      for (const panel of withQueries) {
        for (const { expr } of panel.targets ?? []) {
          for (const [, name] of expr.matchAll(/\$(\w+)/g)) {
            if (!name!.startsWith('__')) assert.ok(defined.has(name!), `${file} › ${panel.title} uses $${name}`);
          }
        }
      }
    }
    assert.ok(panelQueries().length >= 50);
  });

  it('the dashboards provider reads the folder Compose mounts the dashboards at', () => {
    const provider = parse(
      readFileSync(join(monitoringDir, 'grafana', 'provisioning', 'dashboards', 'chassis.yml'), 'utf8'),
    );
    assert.equal(provider.apiVersion, 1);
    assert.equal(provider.providers[0].type, 'file');
    assert.equal(provider.providers[0].options.path, '/var/lib/grafana/dashboards');
  });
});
