import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ComposeFile, type ComposeService, composeProject, skipUnlessInstalled } from '@chassis/testing';
import { distributedTopology } from '../src/launcher.ts';

/**
 * deploy/compose/docker-compose.yml runs the distributed SimpleBank of distributedTopology() on one
 * machine. These tests keep the two in step and check the file the way Compose reads it.
 */

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const project = composeProject(repo, 'deploy/compose');

/**
 * Host paths the Compose file mounts that the monitoring work (deploy/monitoring/) provides and the
 * image (deploy/Dockerfile) — written alongside this file; a mount outside this list must exist now.
 */
const expectedFromMonitoring = [
  'deploy/monitoring/prometheus/prometheus.yml',
  'deploy/monitoring/prometheus/rules',
  'deploy/monitoring/alertmanager/alertmanager.yml',
  'deploy/monitoring/grafana/provisioning',
  'deploy/monitoring/grafana/dashboards',
];
const expectedFromImage = ['deploy/Dockerfile'];

/** The services that run a SimpleBank node: built from deploy/Dockerfile, running its default command. */
function simplebankServices(compose: ComposeFile): [string, ComposeService][] {
  return Object.entries(compose.services).filter(([, service]) => service.build && !service.command);
}

describe('deploy/compose/docker-compose.yml', () => {
  it('has one service per process of distributedTopology(), with its SERVICES, NODE_ID and gateway port', async () => {
    const compose = await project.read();
    const topology = distributedTopology();
    const nodes = new Map(simplebankServices(compose));
    assert.deepEqual([...nodes.keys()].sort(), topology.map((spec) => spec.name).sort());
    for (const spec of topology) {
      const env = nodes.get(spec.name)?.environment ?? {};
      assert.equal(env.SERVICES, spec.services, `${spec.name}: SERVICES`);
      assert.equal(env.NODE_ID, spec.name, `${spec.name}: NODE_ID`);
      assert.equal(env.PORT, spec.port === undefined ? 'off' : String(spec.port), `${spec.name}: PORT`);
      if (spec.port !== undefined) {
        assert.equal(env.HOST, '0.0.0.0', 'the gateway listens beyond the container');
        assert.deepEqual(nodes.get(spec.name)?.ports, [`${spec.port}:${spec.port}`]);
      }
    }
  });

  it('wires every node to NATS JetStream, PostgreSQL, the exchange and the collector, and waits for them to be healthy', async () => {
    const compose = await project.read();
    assert.ok(compose.services.nats?.image?.startsWith('nats:'));
    assert.ok(compose.services.nats?.healthcheck?.test.join(' ').includes('js-enabled-only=true'));
    for (const [name, service] of simplebankServices(compose)) {
      const env = service.environment ?? {};
      assert.equal(env.CHASSIS_TRANSPORT, 'nats://nats:4222', name);
      assert.match(env.DATABASE_URL ?? '', /^postgres:\/\/simplebank:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432\//);
      assert.equal(env.EXCHANGE_URL, 'http://exchange:9090', name);
      assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector:4318', name);
      assert.equal(service.build?.dockerfile, 'deploy/Dockerfile');
      assert.equal(resolve(project.dir, service.build?.context ?? ''), resolve(repo));
    }
    const nodes = distributedTopology().map((spec) => spec.name);
    project.assertStartOrder(compose, { nodes, dependencies: ['nats', 'postgres', 'exchange'], last: 'edge' });
    assert.equal(compose.services.edge?.environment?.REDIS_URL, 'redis://redis:6379');
    const exchange = compose.services.exchange;
    assert.equal(exchange?.environment?.EXCHANGE_PORT, '9090');
    assert.deepEqual(exchange?.command, ['node', 'apps/simplebank/exchange-simulator/main.ts']);
    assert.ok(existsSync(join(repo, exchange.command[1]!)), 'the simulator is where the command says');
  });

  it('commits no secret: each is a required variable from the uncommitted .env, which .env.example lists', async () => {
    const compose = await project.read();
    await project.assertSecretsUncommitted({
      CHASSIS_JWT_SECRET: compose.services.edge?.environment?.CHASSIS_JWT_SECRET,
      POSTGRES_PASSWORD: compose.services.postgres?.environment?.POSTGRES_PASSWORD,
      GRAFANA_ADMIN_PASSWORD: compose.services.grafana?.environment?.GF_SECURITY_ADMIN_PASSWORD,
    });
  });

  it('mounts only host paths that exist, or that the monitoring files and the image provide', async () => {
    const compose = await project.read();
    const mounted = new Set(project.mounts(compose).keys());
    for (const { build } of Object.values(compose.services)) {
      if (build) mounted.add(relative(repo, resolve(project.dir, build.context, build.dockerfile)));
    }
    const expected = [...expectedFromMonitoring, ...expectedFromImage];
    for (const path of mounted) {
      assert.ok(existsSync(join(repo, path)) || expected.includes(path), `${path} neither exists nor is expected`);
    }
    // The list above stays honest: each path in it is really used.
    for (const path of expected) assert.ok(mounted.has(path), `${path} is listed but not used`);
    assert.ok(mounted.has('deploy/otel/collector.yml'));
  });

  it('is valid for Compose (docker-compose config -q), and refuses to start without the secrets', {
    skip: skipUnlessInstalled('docker-compose', 'Debian: apt-get install docker-compose'),
  }, async () => {
    // docker-compose 1.29 validates without a Docker engine and without the mounted files.
    // Compose's own reading of the file (anchors and merges resolved) has the topology too.
    const resolved = await project.config('example');
    for (const spec of distributedTopology()) {
      assert.equal(resolved.services[spec.name]?.environment?.SERVICES, spec.services, spec.name);
    }
    assert.match(resolved.services.edge?.environment?.DATABASE_URL ?? '', /^postgres:\/\/simplebank:change-me/);
    await assert.rejects(project.config('empty'), (error: { stderr: string }) =>
      /set POSTGRES_PASSWORD in deploy\/compose\/\.env/.test(error.stderr),
    );
  });
});
