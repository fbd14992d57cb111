import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kubernetesObjects, validateKubernetesObjects } from '@chassis/deploy';
import { kubernetesOverlaySuite, objectsOfKind, overlayBuilder } from '@chassis/deploy/testing';
import { skipUnlessInstalled } from '@chassis/testing';
import {
  KUBERNETES_DIR,
  NEWSPORTAL_PRODUCTION_TLS,
  newsportalManifests,
  newsportalTopology,
} from '../src/kubernetes.ts';
import { newsportalServiceNames } from '../src/services.ts';

const kubectlMissing = skipUnlessInstalled('kubectl', 'Debian kubernetes-client; .ci/run installs it');
const build = overlayBuilder(KUBERNETES_DIR);
describe('News portal on Kubernetes: the generated base and the staging, production and canary overlays', () => {
  kubernetesOverlaySuite({
    dir: KUBERNETES_DIR,
    manifests: newsportalManifests,
    command: 'npm run deploy:generate:newsportal',
    topology: newsportalTopology(),
    tls: NEWSPORTAL_PRODUCTION_TLS,
    overlays: {
      staging: { namespace: 'newsportal-staging', tag: 'staging' },
      production: { namespace: 'newsportal', tag: '0.1.0' },
      canary: { namespace: 'newsportal', tag: 'canary' },
    },
    skip: kubectlMissing,
  });

  it('runs every service once, one Deployment per process group; the objects fit the Kubernetes schemas', () => {
    const objects = kubernetesObjects(newsportalTopology());
    validateKubernetesObjects(objects);
    const deployments = objectsOfKind(objects, 'Deployment');
    assert.deepEqual(
      deployments.map((d) => d.metadata!.name).sort(),
      ['commands', 'edge', 'query-famous', 'query-politics', 'query-sports', 'users'].map((g) => `newsportal-${g}`),
    );
    const hosted = newsportalTopology().groups.flatMap((group) => group.services);
    assert.deepEqual(hosted.sort(), newsportalServiceNames().sort());
  });

  it('recommendations reach users over gRPC: their address is users’ Service, whose grpc port reaches the server', () => {
    const objects = kubernetesObjects(newsportalTopology());
    const edge = objectsOfKind(objects, 'ConfigMap').find((config) =>
      config.data!.SERVICES!.split(',').includes('recommendation'),
    )!;
    const [host, port] = edge.data!.USERS_GRPC_ADDRESS!.split(':');
    const service = objectsOfKind(objects, 'Service').find((candidate) => candidate.metadata!.name === host);
    assert.ok(service, `a Service named ${host}`);
    const servicePort = service.spec!.ports!.find((candidate) => candidate.name === 'grpc')!;
    assert.equal(servicePort.port, Number(port));
    // The pods the Service selects run users, serve gRPC on that container port, on every interface.
    const selected = objectsOfKind(objects, 'Deployment').filter((deployment) =>
      Object.entries(service.spec!.selector!).every(
        ([key, value]) => deployment.spec!.template.metadata!.labels![key] === value,
      ),
    );
    assert.equal(selected.length, 1);
    const container = selected[0]!.spec!.template.spec!.containers[0]!;
    const containerPort = container.ports!.find((candidate) => candidate.name === servicePort.targetPort)!;
    const users = objectsOfKind(objects, 'ConfigMap').find(
      (config) => config.metadata!.name === container.envFrom![0]!.configMapRef!.name,
    )!;
    assert.equal(users.data!.SERVICES, 'users');
    assert.equal(users.data!.GRPC_PORT, String(containerPort.containerPort));
    assert.equal(users.data!.GRPC_HOST, '0.0.0.0');
    assert.deepEqual(
      container.readinessProbe!.grpc,
      { port: 50051 },
      'ready when GetUserData’s server answers its health check',
    );
    // The users NetworkPolicy lets the namespace's pods (the edge) in on that port.
    const policy = objectsOfKind(objects, 'NetworkPolicy').find((candidate) => candidate.metadata!.name === host)!;
    assert.ok(policy.spec!.ingress!.some((rule) => rule.ports!.some((p) => p.port === containerPort.containerPort)));
  });

  it('staging and production: replicas and config per overlay', { skip: kubectlMissing }, async () => {
    const replicas = async (overlay: string) =>
      Object.fromEntries(
        objectsOfKind(await build(overlay), 'Deployment').map((d) => [d.metadata!.name, d.spec!.replicas]),
      );
    assert.equal((await replicas('staging'))['newsportal-edge'], 1);
    assert.equal((await replicas('production'))['newsportal-edge'], 2);
    assert.equal((await replicas('production'))['newsportal-users'], 2);
    const debug = objectsOfKind(await build('staging'), 'ConfigMap').find(
      (c) => c.metadata!.name === 'newsportal-edge',
    )!;
    assert.equal(debug.data!.LOG_LEVEL, 'debug');
  });

  it('canary: its edge reaches users’ gRPC through production’s Service', { skip: kubectlMissing }, async () => {
    const canary = await build('canary');
    const services = objectsOfKind(await build('production'), 'Service');
    // The canary's edge asks users' Service (not a canary name the suffix would have made), on its grpc port.
    const edge = objectsOfKind(canary, 'ConfigMap').find(
      (config) => config.metadata!.name === 'newsportal-edge-canary',
    )!;
    const users = services.find((service) => service.metadata!.name === 'newsportal-users')!;
    const grpc = users.spec!.ports!.find((port) => port.name === 'grpc')!;
    assert.equal(edge.data!.USERS_GRPC_ADDRESS, `newsportal-users:${grpc.port}`);
  });
});
