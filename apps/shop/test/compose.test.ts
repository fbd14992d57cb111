import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type ComposeFile, type ComposeService, composeProject, skipUnlessInstalled } from '@chassis/testing';
import { parse } from 'yaml';
import { distributedTopology } from '../src/launcher.ts';
import { loadedRuleCounts } from './monitoring.ts';

/**
 * deploy/compose/shop/docker-compose.yml runs the distributed Shop of distributedTopology() on one machine
 * over RabbitMQ and PostgreSQL. These tests keep the two in step and check the file the way Compose reads
 * it, and the Prometheus config it mounts the way Prometheus reads it.
 */

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const project = composeProject(repo, 'deploy/compose/shop');

/** The services that run a Shop node: built from deploy/Dockerfile. */
function shopServices(compose: ComposeFile): [string, ComposeService][] {
  return Object.entries(compose.services).filter(([, service]) => service.build);
}

describe('deploy/compose/shop/docker-compose.yml', () => {
  it('has one service per process of distributedTopology(), with its SERVICES, NODE_ID and ports (HTTP and gRPC on the edge)', async () => {
    const compose = await project.read();
    const topology = distributedTopology();
    const nodes = new Map(shopServices(compose));
    assert.deepEqual([...nodes.keys()].sort(), topology.map((spec) => spec.name).sort());
    for (const spec of topology) {
      const service = nodes.get(spec.name)!;
      const env = service.environment ?? {};
      assert.equal(env.SERVICES, spec.services, `${spec.name}: SERVICES`);
      assert.equal(env.NODE_ID, spec.name, `${spec.name}: NODE_ID`);
      assert.equal(env.PORT, spec.port === undefined ? 'off' : String(spec.port), `${spec.name}: PORT`);
      const hostsUsers = spec.services.split(',').includes('shop-users');
      assert.equal(env.GRPC_PORT, hostsUsers ? '50052' : 'off', `${spec.name}: GRPC_PORT`);
      if (spec.port !== undefined) {
        assert.equal(env.HOST, '0.0.0.0', 'the gateway listens beyond the container');
        assert.equal(env.GRPC_HOST, '0.0.0.0', 'gRPC too');
        assert.deepEqual(service.ports, [`${spec.port}:${spec.port}`, '50052:50052']);
      }
      assert.deepEqual(service.build?.args, { APP_WORKSPACE: 'apps/shop', APP_ENTRY: 'apps/shop/src/main.ts' });
      assert.equal(service.build?.dockerfile, 'deploy/Dockerfile');
      assert.equal(resolve(project.dir, service.build?.context ?? ''), resolve(repo));
      assert.ok(existsSync(join(repo, service.build!.args!.APP_ENTRY!)));
    }
  });

  it('wires every node to RabbitMQ, PostgreSQL and the collector, and waits for them to be healthy; the edge last', async () => {
    const compose = await project.read();
    assert.ok(compose.services.rabbitmq?.image?.startsWith('rabbitmq:'));
    for (const [name, service] of shopServices(compose)) {
      const env = service.environment ?? {};
      assert.match(env.CHASSIS_TRANSPORT ?? '', /^amqp:\/\/shop:\$\{RABBITMQ_PASSWORD:\?[^}]*\}@rabbitmq:5672$/, name);
      assert.match(env.DATABASE_URL ?? '', /^postgres:\/\/shop:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432\/shop$/);
      assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector:4318', name);
      assert.equal(env.NODE_ENV, 'production', name);
    }
    const nodes = distributedTopology().map((spec) => spec.name);
    project.assertStartOrder(compose, { nodes, dependencies: ['rabbitmq', 'postgres'], last: 'edge' });
    assert.equal(compose.services.edge?.environment?.REDIS_URL, 'redis://redis:6379');
  });

  it('commits no secret: each is a required variable from the uncommitted .env, which .env.example lists', async () => {
    const compose = await project.read();
    await project.assertSecretsUncommitted({
      SHOP_JWT_SECRET: compose.services.edge?.environment?.SHOP_JWT_SECRET,
      POSTGRES_PASSWORD: compose.services.postgres?.environment?.POSTGRES_PASSWORD,
      RABBITMQ_PASSWORD: compose.services.rabbitmq?.environment?.RABBITMQ_DEFAULT_PASS,
      GRAFANA_ADMIN_PASSWORD: compose.services.grafana?.environment?.GF_SECURITY_ADMIN_PASSWORD,
    });
  });

  it('mounts only host paths that exist: the chassis’s and the Shop’s rules and dashboards, the Shop’s Prometheus targets', async () => {
    const mounted = project.mounts(await project.read());
    for (const path of mounted.keys()) assert.ok(existsSync(join(repo, path)), `${path} exists`);
    assert.equal(mounted.get('deploy/monitoring/shop/prometheus/prometheus.yml'), '/etc/prometheus/prometheus.yml');
    assert.equal(mounted.get('deploy/monitoring/prometheus/rules'), '/etc/prometheus/rules');
    assert.equal(mounted.get('deploy/monitoring/shop/prometheus/shop.yml'), '/etc/prometheus/shop/shop.yml');
    assert.equal(mounted.get('deploy/monitoring/shop/grafana'), '/var/lib/grafana/dashboards/shop');
    assert.equal(mounted.get('deploy/monitoring/grafana/dashboards'), '/var/lib/grafana/dashboards/chassis');
    assert.equal(mounted.get('deploy/otel/collector.yml'), '/etc/otelcol/config.yaml');
  });

  it('its Prometheus config is valid, loads the chassis’s and the Shop’s rules, scrapes every process on its ops port', {
    skip: skipUnlessInstalled('promtool', 'Debian: apt-get install prometheus'),
  }, async () => {
    const config = parse(await readFile(join(repo, 'deploy/monitoring/shop/prometheus/prometheus.yml'), 'utf8'));
    const chassis = config.scrape_configs.find((job: { job_name: string }) => job.job_name === 'chassis');
    const targets = chassis.static_configs.flatMap((group: { targets: string[] }) => group.targets).sort();
    assert.deepEqual(
      targets,
      distributedTopology()
        .map((spec) => `${spec.name}:9400`)
        .sort(),
    );
    // The layout Compose mounts: the config, rules/ (the chassis's) and shop/ (the Shop's) beside it.
    const scratch = await mkdtemp(join(tmpdir(), 'shop-prometheus-'));
    try {
      const mounted = project.mounts(await project.read());
      for (const [source, target] of mounted) {
        if (!target.startsWith('/etc/prometheus/')) continue;
        const path = join(scratch, target.slice('/etc/prometheus/'.length));
        await mkdir(dirname(path), { recursive: true });
        await symlink(join(repo, source), path);
      }
      const checked = await run('promtool', ['check', 'config', 'prometheus.yml'], { cwd: scratch });
      assert.match(checked.stdout, /SUCCESS: prometheus\.yml is valid/);
      // One line per rule file: the chassis's (and other apps' beside them) and the Shop's.
      const found = [...checked.stdout.matchAll(/SUCCESS: (\d+) rules found/g)].map((match) => Number(match[1]));
      assert.deepEqual(found.sort(), [...loadedRuleCounts().values()].sort());
      assert.ok(found.includes(3), 'shop.yml is loaded');
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });

  it('is valid for Compose (docker-compose config -q), and refuses to start without the secrets', {
    skip: skipUnlessInstalled('docker-compose', 'Debian: apt-get install docker-compose'),
  }, async () => {
    const resolved = await project.config('example');
    for (const spec of distributedTopology()) {
      assert.equal(resolved.services[spec.name]?.environment?.SERVICES, spec.services, spec.name);
    }
    assert.match(resolved.services.edge?.environment?.DATABASE_URL ?? '', /^postgres:\/\/shop:change-me/);
    assert.match(resolved.services.edge?.environment?.CHASSIS_TRANSPORT ?? '', /^amqp:\/\/shop:change-me/);
    await assert.rejects(project.config('empty'), (error: { stderr: string }) =>
      /set \w+ in deploy\/compose\/shop\/\.env/.test(error.stderr),
    );
  });
});
