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
import { skipUnlessInstalled } from '@chassis/testing';
import {
  KUBERNETES_DIR,
  NEWSPORTAL_PRODUCTION_TLS,
  newsportalManifests,
  newsportalTopology,
} from '../src/kubernetes.ts';
import { newsportalServiceNames } from '../src/services.ts';

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
    built = kustomizeBuild(join(KUBERNETES_DIR, 'overlays', overlay));
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

describe('News portal on Kubernetes: the generated base and the staging, production and canary overlays', () => {
  it('the committed base is exactly what the generator makes (run `npm run deploy:generate:newsportal` after a change)', async () => {
    assert.deepEqual(await staleKubernetesManifests(KUBERNETES_DIR, newsportalManifests()), []);
  });

  it('runs every service once, one Deployment per process group; the objects fit the Kubernetes schemas', () => {
    const objects = kubernetesObjects(newsportalTopology());
    validateKubernetesObjects(objects);
    const deployments = objects.filter((o) => o.kind === 'Deployment') as Extract<
      KubernetesObject,
      { kind: 'Deployment' }
    >[];
    assert.deepEqual(
      deployments.map((d) => d.metadata!.name).sort(),
      ['commands', 'edge', 'query-famous', 'query-politics', 'query-sports', 'users'].map((g) => `newsportal-${g}`),
    );
    const hosted = newsportalTopology().groups.flatMap((group) => group.services);
    assert.deepEqual(hosted.sort(), newsportalServiceNames().sort());
  });

  it('recommendations reach users over gRPC: their address is users’ Service, whose grpc port reaches the server', () => {
    const objects = kubernetesObjects(newsportalTopology());
    const of = <K extends KubernetesObject['kind']>(kind: K) =>
      objects.filter((o) => o.kind === kind) as Extract<KubernetesObject, { kind: K }>[];
    const edge = of('ConfigMap').find((config) => config.data!.SERVICES!.split(',').includes('recommendation'))!;
    const [host, port] = edge.data!.USERS_GRPC_ADDRESS!.split(':');
    const service = of('Service').find((candidate) => candidate.metadata!.name === host);
    assert.ok(service, `a Service named ${host}`);
    const servicePort = service.spec!.ports!.find((candidate) => candidate.name === 'grpc')!;
    assert.equal(servicePort.port, Number(port));
    // The pods the Service selects run users, serve gRPC on that container port, on every interface.
    const selected = of('Deployment').filter((deployment) =>
      Object.entries(service.spec!.selector!).every(
        ([key, value]) => deployment.spec!.template.metadata!.labels![key] === value,
      ),
    );
    assert.equal(selected.length, 1);
    const container = selected[0]!.spec!.template.spec!.containers[0]!;
    const containerPort = container.ports!.find((candidate) => candidate.name === servicePort.targetPort)!;
    const users = of('ConfigMap').find(
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
    const policy = of('NetworkPolicy').find((candidate) => candidate.metadata!.name === host)!;
    assert.ok(policy.spec!.ingress!.some((rule) => rule.ports!.some((p) => p.port === containerPort.containerPort)));
  });

  it('`kubectl kustomize` builds the base', { skip: kubectlMissing }, async () => {
    const base = await kustomizeBuild(join(KUBERNETES_DIR, 'base'));
    assert.ok(base.some((object) => object.metadata?.name === 'newsportal-edge'));
  });

  it('kubectl kustomize builds staging, production and canary, every object valid, each in its namespace and tag', {
    skip: kubectlMissing,
  }, async () => {
    const expected = {
      staging: ['newsportal-staging', 'staging'],
      production: ['newsportal', '0.1.0'],
      canary: ['newsportal', 'canary'],
    };
    for (const overlay of OVERLAYS) {
      const objects = await build(overlay);
      validateKubernetesObjects(objects);
      const [namespace, tag] = expected[overlay];
      for (const object of objects)
        assert.equal(object.metadata!.namespace, namespace, `${overlay}: ${object.metadata!.name}`);
      for (const deployment of all(objects, 'Deployment')) {
        const container = deployment.spec!.template.spec!.containers[0]!;
        assert.equal(container.image, `ghcr.io/chassis/newsportal:${tag}`);
        const configName = container.envFrom![0]!.configMapRef!.name;
        assert.ok(
          all(objects, 'ConfigMap').some((config) => config.metadata!.name === configName),
          `${overlay}: ${deployment.metadata!.name}'s ConfigMap ${configName} is in the overlay`,
        );
      }
    }
    const replicas = async (overlay: string) =>
      Object.fromEntries(all(await build(overlay), 'Deployment').map((d) => [d.metadata!.name, d.spec!.replicas]));
    assert.equal((await replicas('staging'))['newsportal-edge'], 1);
    assert.equal((await replicas('production'))['newsportal-edge'], 2);
    assert.equal((await replicas('production'))['newsportal-users'], 2);
    const debug = all(await build('staging'), 'ConfigMap').find((c) => c.metadata!.name === 'newsportal-edge')!;
    assert.equal(debug.data!.LOG_LEVEL, 'debug');
  });

  it('canary: the workloads only, track canary, one replica each; production’s Services reach them, users’ gRPC too', {
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
    // The canary's edge asks users' Service (not a canary name the suffix would have made), on its grpc port.
    const edge = all(canary, 'ConfigMap').find((config) => config.metadata!.name === 'newsportal-edge-canary')!;
    const users = services.find((service) => service.metadata!.name === 'newsportal-users')!;
    const grpc = users.spec!.ports!.find((port) => port.name === 'grpc')!;
    assert.equal(edge.data!.USERS_GRPC_ADDRESS, `newsportal-users:${grpc.port}`);
  });

  it('TLS: production and the canary mount the broker’s and PostgreSQL’s CAs in every pod, staging none', {
    skip: kubectlMissing,
  }, async () => {
    const generated = workloads(kubernetesObjects({ ...newsportalTopology(), tls: NEWSPORTAL_PRODUCTION_TLS }));
    const expected = tlsParts(generated[0]!);
    assert.deepEqual(
      expected.volumes.map((volume) => volume.secret!.secretName),
      ['newsportal-broker-tls', 'newsportal-postgres-tls'],
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
});
