import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { kustomizeBuild, staleKubernetesManifests } from './manifests.ts';
import { type KubernetesObject, kubernetesObjects } from './objects.ts';
import type { AppTopology, TlsSettings } from './topology.ts';
import { validateKubernetesObjects } from './validate.ts';

type Workload = Extract<KubernetesObject, { kind: 'Deployment' | 'Job' }>;

/** The objects of one kind, typed as that kind. */
export function objectsOfKind<K extends KubernetesObject['kind']>(
  objects: readonly KubernetesObject[],
  kind: K,
): Extract<KubernetesObject, { kind: K }>[] {
  return objects.filter((object) => object.kind === kind) as Extract<KubernetesObject, { kind: K }>[];
}

/** The Deployments and Jobs: what runs a pod. */
export function workloadsOf(objects: readonly KubernetesObject[]): Workload[] {
  return objects.filter((object): object is Workload => object.kind === 'Deployment' || object.kind === 'Job');
}

/** `kubectl kustomize` of `<dir>/overlays/<name>`, built once per overlay however often it is asked for. */
export function overlayBuilder(dir: string): (overlay: string) => Promise<KubernetesObject[]> {
  const builds = new Map<string, Promise<KubernetesObject[]>>();
  return (overlay) => {
    let built = builds.get(overlay);
    if (!built) {
      built = kustomizeBuild(join(dir, 'overlays', overlay));
      builds.set(overlay, built);
    }
    return built;
  };
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

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

export interface KubernetesOverlaySuiteOptions {
  /** The app's folder under `deploy/kubernetes/`, holding `base/` and `overlays/`. */
  dir: string;
  /** What `kubernetesManifests` makes for it: the committed files must be exactly these. */
  manifests: () => Map<string, string>;
  /** The command that writes them again, for the failure's message. */
  command: string;
  topology: AppTopology;
  /** Production's certificates, which the production and canary overlays mount in every pod. */
  tls: TlsSettings;
  /** Each overlay's namespace and image tag. */
  overlays: Record<'staging' | 'production' | 'canary', { namespace: string; tag: string }>;
  /** Skip the cases that need kubectl, and why (e.g. `skipUnlessInstalled('kubectl', …)`). */
  skip: false | string;
}

/**
 * What every app's Kubernetes folder must hold, as `node:test` cases — call inside a `describe`, then add
 * the app's own (its replicas, its flags, its ports): the committed files are the generator's; each
 * overlay builds, its objects valid, in its namespace with its image tag, every Deployment's ConfigMap
 * present; the canary is the workloads only, on track canary with one replica each, behind production's
 * Services and claiming none of production's pods; production and the canary mount the broker's and
 * PostgreSQL's CAs in every pod, staging none.
 */
export function kubernetesOverlaySuite(options: KubernetesOverlaySuiteOptions): void {
  const build = overlayBuilder(options.dir);
  const { skip } = options;

  it(`the committed files are exactly what the generator makes (run \`${options.command}\` after a change)`, async () => {
    assert.deepEqual(await staleKubernetesManifests(options.dir, options.manifests()), []);
  });

  it('kubectl kustomize builds the base and every overlay, each object valid, in its namespace, with its tag', {
    skip,
  }, async () => {
    validateKubernetesObjects(await kustomizeBuild(join(options.dir, 'base')));
    for (const [overlay, { namespace, tag }] of Object.entries(options.overlays)) {
      const objects = await build(overlay);
      assert.ok(objects.length > 0, `${overlay} has objects`);
      validateKubernetesObjects(objects);
      for (const object of objects) {
        assert.equal(object.metadata!.namespace, namespace, `${overlay}: ${object.kind} ${object.metadata!.name}`);
      }
      const configMaps = new Set(objectsOfKind(objects, 'ConfigMap').map((config) => config.metadata!.name));
      for (const workload of workloadsOf(objects)) {
        const container = workload.spec!.template.spec!.containers[0]!;
        assert.equal(container.image, `${options.topology.image.replace(/:[^:/]*$/, '')}:${tag}`);
        if (workload.kind !== 'Deployment') continue;
        const configName = container.envFrom?.[0]?.configMapRef?.name;
        assert.ok(configMaps.has(configName), `${overlay}: ${workload.metadata!.name}'s ConfigMap ${configName}`);
      }
    }
  });

  it('canary: the workloads only, track canary, one replica each, behind production’s Services', {
    skip,
  }, async () => {
    const production = await build('production');
    const canary = await build('canary');
    const stable = objectsOfKind(production, 'Deployment');
    const canaries = objectsOfKind(canary, 'Deployment');
    assert.deepEqual(
      canaries.map((deployment) => deployment.metadata!.name),
      stable.map((deployment) => `${deployment.metadata!.name}-canary`),
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
      // Two Deployments must not claim each other's pods: their selectors differ by track.
      for (const other of stable) {
        assert.ok(!selects(other.spec!.selector.matchLabels!, deployment.spec!.template.metadata!.labels!));
      }
    }
    for (const deployment of stable) assert.equal(deployment.spec!.template.metadata!.labels!.track, 'stable');
    // Every Deployment, stable or canary, is selected by its group's production Service, and by no other.
    const services = objectsOfKind(production, 'Service');
    for (const service of services) assert.ok(!('track' in service.spec!.selector!), 'Services select both tracks');
    for (const deployment of [...stable, ...canaries]) {
      const labels = deployment.spec!.template.metadata!.labels!;
      assert.deepEqual(
        services.filter((service) => selects(service.spec!.selector!, labels)).map((service) => service.metadata!.name),
        [deployment.metadata!.name!.replace(/-canary$/, '')],
        `${deployment.metadata!.name} behind its Service`,
      );
    }
  });

  it('TLS: production and the canary mount the broker’s and PostgreSQL’s CAs in every pod, staging none', {
    skip,
  }, async () => {
    // What the generator makes with production's tls: the overlays must give each pod exactly these.
    const generated = workloadsOf(kubernetesObjects({ ...options.topology, tls: options.tls }));
    const expected = tlsParts(generated[0]!);
    assert.deepEqual(
      expected.volumes.map((volume) => volume.secret!.secretName),
      [options.tls.broker?.secret, options.tls.database?.secret].filter(Boolean),
    );
    const names = (workloads: Workload[]) =>
      workloads.map((workload) => `${workload.kind}/${workload.metadata!.name!.replace(/-canary$/, '')}`).sort();
    for (const overlay of ['production', 'canary']) {
      const built = workloadsOf(await build(overlay));
      assert.deepEqual(names(built), names(generated), `${overlay}: every Deployment and the migration Job`);
      for (const workload of built) {
        assert.deepEqual(tlsParts(workload), expected, `${overlay}: ${workload.kind} ${workload.metadata!.name}`);
        const pod = workload.spec!.template.spec!;
        assert.ok(
          pod.volumes!.some((volume) => volume.name === 'tmp'),
          'the base’s /tmp volume stays',
        );
        const env = pod.containers[0]!.env!.map((variable) => variable.name);
        assert.ok(env.includes('CHASSIS_TRANSPORT'), 'the base’s variables stay');
      }
    }
    const staging = workloadsOf(await build('staging'));
    assert.deepEqual(names(staging), names(generated));
    for (const workload of staging) {
      assert.deepEqual(tlsParts(workload), { volumes: [], mounts: [], env: [] }, `staging: ${workload.metadata!.name}`);
    }
  });
}
