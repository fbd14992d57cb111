import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  type KubernetesObject,
  kubernetesObjects,
  kustomizeBuild,
  staleKubernetesManifests,
  validateKubernetesObjects,
} from '@chassis/deploy';
import { pgliteTarget, skipUnlessInstalled } from '@chassis/testing';
import {
  SHOP_KUBERNETES_DIR,
  SHOP_PRODUCTION_TLS,
  SHOP_USERS_GRPC_PORT,
  shopManifests,
  shopTopology,
} from '../src/kubernetes.ts';
import { migrateShop } from '../src/migrate.ts';
import { shopServiceNames } from '../src/services.ts';

const kubectlMissing = skipUnlessInstalled('kubectl', 'Debian kubernetes-client; .ci/run installs it');
const OVERLAYS = ['staging', 'production', 'canary'] as const;
type Workload = Extract<KubernetesObject, { kind: 'Deployment' | 'Job' }>;

function all<K extends KubernetesObject['kind']>(objects: KubernetesObject[], kind: K) {
  return objects.filter((object) => object.kind === kind) as Extract<KubernetesObject, { kind: K }>[];
}

const workloads = (objects: KubernetesObject[]) =>
  objects.filter((object): object is Workload => object.kind === 'Deployment' || object.kind === 'Job');

/** `kubectl kustomize` of an overlay, as objects: once per overlay for the whole file. */
const builds = new Map<string, Promise<KubernetesObject[]>>();
function build(overlay: string): Promise<KubernetesObject[]> {
  let built = builds.get(overlay);
  if (!built) {
    built = kustomizeBuild(join(SHOP_KUBERNETES_DIR, 'overlays', overlay));
    builds.set(overlay, built);
  }
  return built;
}

/** The parts of a pod that production's TLS adds: Secret volumes, their mounts, CHASSIS_TLS_* variables. */
function tlsParts(workload: Workload) {
  const pod = workload.spec!.template.spec!;
  const container = pod.containers[0]!;
  return {
    volumes: (pod.volumes ?? []).filter((volume) => volume.secret).sort((a, b) => a.name.localeCompare(b.name)),
    mounts: (container.volumeMounts ?? [])
      .filter((mount) => mount.mountPath.startsWith('/etc/chassis/'))
      .sort((a, b) => a.mountPath.localeCompare(b.mountPath)),
    env: (container.env ?? [])
      .filter((variable) => variable.name.startsWith('CHASSIS_TLS_'))
      .sort((a, b) => a.name.localeCompare(b.name)),
  };
}

describe('The Shop on Kubernetes: the generated base and the staging, production and canary overlays', () => {
  it('the committed base is exactly what the generator makes (run `npm run deploy:generate:shop` after a change)', async () => {
    assert.deepEqual(await staleKubernetesManifests(SHOP_KUBERNETES_DIR, shopManifests()), []);
  });

  it('runs every service exactly once, orders twice over; the objects pass the schemas', () => {
    const objects = kubernetesObjects(shopTopology());
    validateKubernetesObjects(objects);
    const deployments = objects.filter((o) => o.kind === 'Deployment') as Extract<
      KubernetesObject,
      { kind: 'Deployment' }
    >[];
    assert.deepEqual(
      deployments.map((d) => [d.metadata!.name, d.spec!.replicas]),
      [
        ['shop-edge', 1],
        ['shop-orders', 2],
        ['shop-payments', 1],
      ],
    );
    const hosted = shopTopology().groups.flatMap((group) => group.services);
    assert.deepEqual([...hosted].sort(), [...shopServiceNames()].sort());
  });

  it('serves gRPC UserService from the group hosting shop-users: container port, Service port, ingress, GRPC_PORT', () => {
    const objects = kubernetesObjects(shopTopology());
    const edge = all(objects, 'Deployment').find((d) => d.metadata!.name === 'shop-edge')!;
    assert.ok(
      shopTopology()
        .groups.find((g) => g.name === 'edge')!
        .services.includes('shop-users'),
    );
    const container = edge.spec!.template.spec!.containers[0]!;
    assert.deepEqual(
      container.ports!.find((port) => port.name === 'grpc'),
      { name: 'grpc', containerPort: SHOP_USERS_GRPC_PORT, protocol: 'TCP' },
    );
    assert.deepEqual(container.readinessProbe!.grpc, { port: SHOP_USERS_GRPC_PORT });
    const service = all(objects, 'Service').find((svc) => svc.metadata!.name === 'shop-edge')!;
    assert.deepEqual(
      service.spec!.ports!.find((port) => port.name === 'grpc'),
      { name: 'grpc', port: SHOP_USERS_GRPC_PORT, targetPort: 'grpc', protocol: 'TCP' },
    );
    const config = all(objects, 'ConfigMap').find((c) => c.metadata!.name === 'shop-edge')!;
    assert.equal(config.data!.GRPC_PORT, String(SHOP_USERS_GRPC_PORT));
    assert.equal(config.data!.GRPC_HOST, '0.0.0.0');
    const policy = all(objects, 'NetworkPolicy').find((p) => p.metadata!.name === 'shop-edge')!;
    assert.ok(
      policy.spec!.ingress!.some((rule) => rule.ports!.some((port) => port.port === SHOP_USERS_GRPC_PORT)),
      'the edge admits gRPC',
    );
    for (const other of all(objects, 'ConfigMap').filter((c) => c.metadata!.name !== 'shop-edge')) {
      assert.equal(other.data!.GRPC_PORT, undefined, `${other.metadata!.name} serves no gRPC`);
    }
  });

  it('kubectl kustomize builds the base, staging, production and canary, every object valid, each in its namespace and tag', {
    skip: kubectlMissing,
  }, async () => {
    const base = await kustomizeBuild(join(SHOP_KUBERNETES_DIR, 'base'));
    assert.ok(base.some((object) => object.metadata?.name === 'shop-migrate'));
    const expected = {
      staging: ['shop-staging', 'staging'],
      production: ['shop', '0.1.0'],
      canary: ['shop', 'canary'],
    };
    for (const overlay of OVERLAYS) {
      const objects = await build(overlay);
      validateKubernetesObjects(objects);
      const [namespace, tag] = expected[overlay];
      for (const object of objects)
        assert.equal(object.metadata!.namespace, namespace, `${overlay}: ${object.metadata!.name}`);
      for (const workload of workloads(objects)) {
        const container = workload.spec!.template.spec!.containers[0]!;
        assert.equal(container.image, `ghcr.io/chassis/shop:${tag}`);
        const configName = container.envFrom?.[0]?.configMapRef?.name;
        if (workload.kind === 'Deployment')
          assert.ok(
            all(objects, 'ConfigMap').some((config) => config.metadata!.name === configName),
            `${overlay}: ${workload.metadata!.name}'s ConfigMap ${configName} is in the overlay`,
          );
      }
    }
    const replicas = async (overlay: string) =>
      Object.fromEntries(all(await build(overlay), 'Deployment').map((d) => [d.metadata!.name, d.spec!.replicas]));
    assert.deepEqual(await replicas('staging'), { 'shop-edge': 1, 'shop-orders': 1, 'shop-payments': 1 });
    assert.deepEqual(await replicas('production'), { 'shop-edge': 2, 'shop-orders': 2, 'shop-payments': 1 });
    const edgeConfig = async (overlay: string, name = 'shop-edge') =>
      all(await build(overlay), 'ConfigMap').find((c) => c.metadata!.name === name)!.data!;
    assert.equal((await edgeConfig('staging')).LOG_LEVEL, 'debug');
    assert.equal((await edgeConfig('production')).RATE_LIMIT_PER_MINUTE, '300');
    assert.equal((await edgeConfig('canary', 'shop-edge-canary')).RATE_LIMIT_PER_MINUTE, '300');
  });

  it('canary: the workloads only, track canary, one replica each; production’s Services reach them, gRPC too', {
    skip: kubectlMissing,
  }, async () => {
    const production = await build('production');
    const canary = await build('canary');
    const stable = all(production, 'Deployment');
    const canaries = all(canary, 'Deployment');
    assert.deepEqual(
      canaries.map((d) => d.metadata!.name),
      stable.map((d) => `${d.metadata!.name}-canary`),
    );
    assert.deepEqual(
      [...new Set(canary.map((object) => object.kind))].sort(),
      ['ConfigMap', 'Deployment', 'Job'],
      'no Service, autoscaler, budget or policy of its own',
    );
    for (const deployment of canaries) {
      assert.equal(deployment.spec!.replicas, 1);
      assert.equal(deployment.spec!.template.metadata!.labels!.track, 'canary');
      assert.equal(deployment.spec!.selector.matchLabels!.track, 'canary');
    }
    const services = all(production, 'Service');
    for (const deployment of [...stable, ...canaries]) {
      const labels = deployment.spec!.template.metadata!.labels!;
      const selecting = services.filter((service) =>
        Object.entries(service.spec!.selector!).every(([key, value]) => labels[key] === value),
      );
      assert.deepEqual(
        selecting.map((service) => service.metadata!.name),
        [deployment.metadata!.name!.replace(/-canary$/, '')],
      );
    }
    // The edge Service's grpc port targets the canary edge's named container port as it does production's.
    const grpc = services.find((s) => s.metadata!.name === 'shop-edge')!.spec!.ports!.find((p) => p.name === 'grpc')!;
    const canaryEdge = canaries.find((d) => d.metadata!.name === 'shop-edge-canary')!;
    assert.ok(
      canaryEdge.spec!.template.spec!.containers[0]!.ports!.some(
        (port) => port.name === grpc.targetPort && port.containerPort === SHOP_USERS_GRPC_PORT,
      ),
    );
  });

  it('TLS: production and the canary mount the broker’s and PostgreSQL’s CAs in every pod, staging none', {
    skip: kubectlMissing,
  }, async () => {
    const generated = workloads(kubernetesObjects({ ...shopTopology(), tls: SHOP_PRODUCTION_TLS }));
    const expected = tlsParts(generated[0]!);
    assert.deepEqual(
      expected.volumes.map((volume) => volume.secret!.secretName),
      ['shop-broker-tls', 'shop-postgres-tls'],
    );
    for (const overlay of ['production', 'canary']) {
      const built = workloads(await build(overlay));
      assert.equal(built.length, generated.length, `${overlay}: every Deployment and the migration Job`);
      for (const workload of built) {
        assert.deepEqual(tlsParts(workload), expected, `${overlay}: ${workload.kind} ${workload.metadata!.name}`);
        assert.ok(workload.spec!.template.spec!.volumes!.some((volume) => volume.name === 'tmp'));
      }
    }
    for (const workload of workloads(await build('staging'))) {
      assert.deepEqual(tlsParts(workload), { volumes: [], mounts: [], env: [] }, `staging: ${workload.metadata!.name}`);
    }
  });

  it('MIGRATE_ONLY migrates each service’s schema, and refuses a service the Shop does not have', async () => {
    const database = await pgliteTarget().newDatabase();
    const reports = await migrateShop({ DATABASE_URL: database, SERVICES: 'shop-orders,shop-payments' });
    assert.deepEqual(
      reports.map((report) => [report.service, report.applied.length > 0]),
      [
        ['shop-orders', true],
        ['shop-payments', true],
      ],
    );
    await assert.rejects(
      migrateShop({ DATABASE_URL: database, SERVICES: 'orders' }),
      /"orders", which this program does not have/,
    );
  });
});
