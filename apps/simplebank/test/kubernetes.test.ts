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
import { QUOTE_AGE_FLAG } from '../contracts/market-data.ts';
import {
  KUBERNETES_DIR,
  SIMPLEBANK_PRODUCTION_TLS,
  simplebankManifests,
  simplebankTopology,
} from '../src/kubernetes.ts';
import { distributedTopology } from '../src/launcher.ts';
import { simplebankServiceNames, simplebankServices } from '../src/services.ts';

const OVERLAYS = ['staging', 'production', 'canary'] as const;
/** The flag's environment variable, as the chassis's flag provider reads it. */
const QUOTE_AGE_ENV = `CHASSIS_FLAG_${QUOTE_AGE_FLAG.toUpperCase().replaceAll('-', '_')}`;

type Service = Extract<KubernetesObject, { kind: 'Service' }>;
type ConfigMap = Extract<KubernetesObject, { kind: 'ConfigMap' }>;

const kubectlMissing = skipUnlessInstalled('kubectl', 'Debian kubernetes-client; .ci/run installs it');

/** `kubectl kustomize` of an overlay, as objects. */
const build = (overlay: string) => kustomizeBuild(join(KUBERNETES_DIR, 'overlays', overlay));

function all<K extends KubernetesObject['kind']>(objects: KubernetesObject[], kind: K) {
  return objects.filter((object) => object.kind === kind) as Extract<KubernetesObject, { kind: K }>[];
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

describe('SimpleBank on Kubernetes: the generated base and the staging, production and canary overlays', () => {
  it('the committed base is exactly what the generator makes (run `npm run deploy:generate` after a change)', async () => {
    assert.deepEqual(await staleKubernetesManifests(KUBERNETES_DIR, simplebankManifests()), []);
  });

  it('the base follows distributedTopology: its groups, their replicas, every service once; schemas valid', () => {
    const topology = simplebankTopology();
    const objects = kubernetesObjects(topology);
    validateKubernetesObjects(objects);
    const deployments = all(objects, 'Deployment');
    assert.deepEqual(
      deployments.map((d) => [d.metadata!.name, d.spec!.replicas]),
      [
        ['simplebank-edge', 1],
        ['simplebank-orders', 2],
        ['simplebank-market', 2],
        ['simplebank-ledger', 1],
      ],
    );
    const processes = distributedTopology();
    const hosted = all(objects, 'ConfigMap').flatMap((config) => config.data!.SERVICES!.split(','));
    assert.deepEqual(hosted.sort(), [...new Set(processes.flatMap((p) => p.services.split(',')))].sort());
    assert.deepEqual(hosted.sort(), simplebankServiceNames().sort(), 'every SimpleBank service runs somewhere, once');
    const edge = all(objects, 'ConfigMap').find((config) => config.metadata!.name === 'simplebank-edge')!;
    assert.equal(edge.data!.PORT, '8080');
    assert.equal(edge.data!.HOST, '0.0.0.0', 'the gateway takes traffic from outside the pod');
    const job = all(objects, 'Job')[0]!;
    const jobServices = job.spec!.template.spec!.containers[0]!.env!.find((v) => v.name === 'SERVICES')!.value!;
    const withMigrations = simplebankServices({ secret: 'x', exchangeUrl: 'http://x' })
      .filter((service) => service.migrations !== undefined)
      .map((service) => service.name);
    for (const name of withMigrations) assert.ok(jobServices.split(',').includes(name), `the Job migrates ${name}`);
  });

  for (const overlay of OVERLAYS) {
    it(`kubectl kustomize builds ${overlay}, every object valid against the schemas`, {
      skip: kubectlMissing,
    }, async () => {
      const objects = await build(overlay);
      assert.ok(objects.length > 0);
      validateKubernetesObjects(objects);
      for (const deployment of all(objects, 'Deployment')) {
        const container = deployment.spec!.template.spec!.containers[0]!;
        assert.match(container.image!, /^ghcr\.io\/chassis\/simplebank:/);
        const configName = container.envFrom![0]!.configMapRef!.name;
        assert.ok(
          all(objects, 'ConfigMap').some((config) => config.metadata!.name === configName),
          `${deployment.metadata!.name}'s ConfigMap ${configName} is in the overlay`,
        );
      }
    });
  }

  it('canary: the same Deployments with track canary and fewer replicas, selected by production’s Services', {
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
    assert.equal(all(canary, 'Service').length, 0, 'the canary has no Service of its own');
    assert.equal(all(canary, 'HorizontalPodAutoscaler').length, 0);
    const stableReplicas = stable.reduce((sum, d) => sum + d.spec!.replicas!, 0);
    const canaryReplicas = canaries.reduce((sum, d) => sum + d.spec!.replicas!, 0);
    assert.ok(
      canaryReplicas < stableReplicas,
      `a small share: ${canaryReplicas} of ${canaryReplicas + stableReplicas}`,
    );
    for (const deployment of canaries) {
      assert.equal(deployment.metadata!.namespace, stable[0]!.metadata!.namespace, 'beside production');
      assert.equal(deployment.spec!.template.metadata!.labels!.track, 'canary');
      assert.equal(deployment.spec!.selector.matchLabels!.track, 'canary');
      assert.equal(deployment.spec!.replicas, 1);
    }
    for (const deployment of stable) assert.equal(deployment.spec!.template.metadata!.labels!.track, 'stable');
    // Every Deployment, stable or canary, is selected by its group's production Service, and by no other.
    const services: Service[] = all(production, 'Service');
    for (const deployment of [...stable, ...canaries]) {
      const labels = deployment.spec!.template.metadata!.labels!;
      const selecting = services.filter((service) => selects(service.spec!.selector!, labels));
      assert.deepEqual(
        selecting.map((service) => service.metadata!.name),
        [deployment.metadata!.name!.replace(/-canary$/, '')],
        `${deployment.metadata!.name} behind its Service`,
      );
    }
    for (const service of services) assert.ok(!('track' in service.spec!.selector!));
    // Two Deployments must not claim each other's pods: their selectors differ by track.
    for (const deployment of canaries) {
      assert.ok(
        !stable.some((other) =>
          selects(other.spec!.selector.matchLabels!, deployment.spec!.template.metadata!.labels!),
        ),
      );
    }
  });

  it(`the feature flag ${QUOTE_AGE_FLAG} per overlay: on in canary and staging, off in production`, {
    skip: kubectlMissing,
  }, async () => {
    const flagOf = async (overlay: string) => {
      const configs: ConfigMap[] = all(await build(overlay), 'ConfigMap');
      const edge = configs.find((config) => config.data?.SERVICES?.split(',').includes('market-data'));
      assert.ok(edge, `${overlay}: the ConfigMap of the group running market-data`);
      return edge.data![QUOTE_AGE_ENV];
    };
    assert.equal(await flagOf('canary'), 'true');
    assert.equal(await flagOf('staging'), 'true');
    assert.equal(await flagOf('production'), 'false');
  });

  it('TLS: production and the canary mount the broker’s and PostgreSQL’s CAs from their Secrets, staging does not', {
    skip: kubectlMissing,
  }, async () => {
    type Workload = Extract<KubernetesObject, { kind: 'Deployment' | 'Job' }>;
    const workloads = (objects: KubernetesObject[]) =>
      objects.filter((object): object is Workload => object.kind === 'Deployment' || object.kind === 'Job');
    // What the generator makes with production's tls: the overlays must give each pod exactly these.
    const generated = workloads(kubernetesObjects({ ...simplebankTopology(), tls: SIMPLEBANK_PRODUCTION_TLS }));
    const tlsParts = (workload: Workload) => {
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
    };
    const expected = tlsParts(generated[0]!);
    assert.deepEqual(expected, {
      volumes: [
        { name: 'broker-tls', secret: { secretName: 'simplebank-broker-tls', defaultMode: 0o440 } },
        { name: 'database-tls', secret: { secretName: 'simplebank-postgres-tls', defaultMode: 0o440 } },
      ],
      mounts: [
        { name: 'database-tls', mountPath: '/etc/chassis/pg', readOnly: true },
        { name: 'broker-tls', mountPath: '/etc/chassis/tls', readOnly: true },
      ],
      env: [{ name: 'CHASSIS_TLS_CA_FILE', value: '/etc/chassis/tls/ca.crt' }],
    });
    for (const overlay of ['production', 'canary']) {
      const built = workloads(await build(overlay));
      assert.deepEqual(
        built.map((workload) => `${workload.kind}/${workload.metadata!.name!.replace(/-canary$/, '')}`).sort(),
        generated.map((workload) => `${workload.kind}/${workload.metadata!.name}`).sort(),
        `${overlay}: every Deployment and the migration Job`,
      );
      for (const workload of built) {
        assert.deepEqual(tlsParts(workload), expected, `${overlay}: ${workload.kind} ${workload.metadata!.name}`);
        const pod = workload.spec!.template.spec!;
        assert.ok(
          pod.volumes!.some((volume) => volume.name === 'tmp'),
          'the base’s /tmp volume stays',
        );
        const env = pod.containers[0]!.env!.map((variable) => variable.name);
        assert.ok(env.includes('DATABASE_URL') && env.includes('CHASSIS_TRANSPORT'), 'the base’s variables stay');
      }
    }
    const staging = workloads(await build('staging'));
    assert.equal(staging.length, generated.length);
    for (const workload of staging) {
      assert.deepEqual(tlsParts(workload), { volumes: [], mounts: [], env: [] }, `staging: ${workload.metadata!.name}`);
    }
  });
});
