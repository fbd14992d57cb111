import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kubernetesObjects, validateKubernetesObjects } from '@chassis/deploy';
import { kubernetesOverlaySuite, objectsOfKind, overlayBuilder } from '@chassis/deploy/testing';
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
const build = overlayBuilder(SHOP_KUBERNETES_DIR);
describe('The Shop on Kubernetes: the generated base and the staging, production and canary overlays', () => {
  kubernetesOverlaySuite({
    dir: SHOP_KUBERNETES_DIR,
    manifests: shopManifests,
    command: 'npm run deploy:generate:shop',
    topology: shopTopology(),
    tls: SHOP_PRODUCTION_TLS,
    overlays: {
      staging: { namespace: 'shop-staging', tag: 'staging' },
      production: { namespace: 'shop', tag: '0.1.0' },
      canary: { namespace: 'shop', tag: 'canary' },
    },
    skip: kubectlMissing,
  });

  it('runs every service exactly once, orders twice over; the objects pass the schemas', () => {
    const objects = kubernetesObjects(shopTopology());
    validateKubernetesObjects(objects);
    const deployments = objectsOfKind(objects, 'Deployment');
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
    const edge = objectsOfKind(objects, 'Deployment').find((d) => d.metadata!.name === 'shop-edge')!;
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
    const service = objectsOfKind(objects, 'Service').find((svc) => svc.metadata!.name === 'shop-edge')!;
    assert.deepEqual(
      service.spec!.ports!.find((port) => port.name === 'grpc'),
      { name: 'grpc', port: SHOP_USERS_GRPC_PORT, targetPort: 'grpc', protocol: 'TCP' },
    );
    const config = objectsOfKind(objects, 'ConfigMap').find((c) => c.metadata!.name === 'shop-edge')!;
    assert.equal(config.data!.GRPC_PORT, String(SHOP_USERS_GRPC_PORT));
    assert.equal(config.data!.GRPC_HOST, '0.0.0.0');
    const policy = objectsOfKind(objects, 'NetworkPolicy').find((p) => p.metadata!.name === 'shop-edge')!;
    assert.ok(
      policy.spec!.ingress!.some((rule) => rule.ports!.some((port) => port.port === SHOP_USERS_GRPC_PORT)),
      'the edge admits gRPC',
    );
    for (const other of objectsOfKind(objects, 'ConfigMap').filter((c) => c.metadata!.name !== 'shop-edge')) {
      assert.equal(other.data!.GRPC_PORT, undefined, `${other.metadata!.name} serves no gRPC`);
    }
  });

  it('staging and production: replicas and config per overlay', { skip: kubectlMissing }, async () => {
    const replicas = async (overlay: string) =>
      Object.fromEntries(
        objectsOfKind(await build(overlay), 'Deployment').map((d) => [d.metadata!.name, d.spec!.replicas]),
      );
    assert.deepEqual(await replicas('staging'), { 'shop-edge': 1, 'shop-orders': 1, 'shop-payments': 1 });
    assert.deepEqual(await replicas('production'), { 'shop-edge': 2, 'shop-orders': 2, 'shop-payments': 1 });
    const edgeConfig = async (overlay: string, name = 'shop-edge') =>
      objectsOfKind(await build(overlay), 'ConfigMap').find((c) => c.metadata!.name === name)!.data!;
    assert.equal((await edgeConfig('staging')).LOG_LEVEL, 'debug');
    assert.equal((await edgeConfig('production')).RATE_LIMIT_PER_MINUTE, '300');
    assert.equal((await edgeConfig('canary', 'shop-edge-canary')).RATE_LIMIT_PER_MINUTE, '300');
  });

  it('canary: its edge serves gRPC behind production’s Service', { skip: kubectlMissing }, async () => {
    const canaries = objectsOfKind(await build('canary'), 'Deployment');
    const services = objectsOfKind(await build('production'), 'Service');
    // The edge Service's grpc port targets the canary edge's named container port as it does production's.
    const grpc = services.find((s) => s.metadata!.name === 'shop-edge')!.spec!.ports!.find((p) => p.name === 'grpc')!;
    const canaryEdge = canaries.find((d) => d.metadata!.name === 'shop-edge-canary')!;
    assert.ok(
      canaryEdge.spec!.template.spec!.containers[0]!.ports!.some(
        (port) => port.name === grpc.targetPort && port.containerPort === SHOP_USERS_GRPC_PORT,
      ),
    );
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
