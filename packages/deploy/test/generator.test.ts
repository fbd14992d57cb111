import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { skipUnlessInstalled } from '@chassis/testing';
import { parseAllDocuments } from 'yaml';
import {
  type AppTopology,
  appTopologySchema,
  type KubernetesObject,
  kubernetesFiles,
  kubernetesObjects,
  TLS_MOUNT_PATHS,
  tlsPatches,
  validateKubernetesObjects,
  writeKubernetesFiles,
  yamlDocuments,
} from '../src/index.ts';

const run = promisify(execFile);

/** Not SimpleBank: the generator is the chassis's, for any app. */
const shop: AppTopology = {
  app: 'shop',
  image: 'registry.example/shop:1.2.3',
  version: '1.2.3',
  groups: [
    { name: 'api', services: ['catalog', 'cart'], replicas: 3, maxReplicas: 10, httpPort: 3000 },
    { name: 'worker', services: ['payments'], env: { PAYMENTS_MODE: 'live' } },
  ],
  drainTimeoutMs: 20_000,
  infra: {
    transport: { secret: 'shop-broker', key: 'url' },
    database: { secret: 'shop-db', key: 'url' },
    redis: { configMap: 'shop-cache', key: 'url' },
  },
  secretEnv: { CHASSIS_JWT_SECRET: { secret: 'shop-jwt', key: 'secret' } },
  serviceMonitor: true,
};

function ofKind<K extends KubernetesObject['kind']>(objects: KubernetesObject[], kind: K, name: string) {
  const found = objects.find((object) => object.kind === kind && object.metadata?.name === name);
  assert.ok(found, `${kind} ${name}`);
  return found as Extract<KubernetesObject, { kind: K }>;
}

describe('@chassis/deploy: Kubernetes objects from an app topology', () => {
  const objects = kubernetesObjects(shop);

  it('makes per group a Deployment, Service, ConfigMap, HPA, PDB, NetworkPolicy and ServiceMonitor, then the migration Job', () => {
    assert.deepEqual(
      objects.map((object) => `${object.kind}/${object.metadata?.name}`),
      [
        ...['api', 'worker'].flatMap((group) =>
          [
            'Deployment',
            'Service',
            'ConfigMap',
            'HorizontalPodAutoscaler',
            'PodDisruptionBudget',
            'NetworkPolicy',
            'ServiceMonitor',
          ].map((kind) => `${kind}/shop-${group}`),
        ),
        'Job/shop-migrate',
      ],
    );
    // Scraped as the job deploy/monitoring's rules and dashboards select on.
    const monitor = ofKind(objects, 'ServiceMonitor', 'shop-api') as {
      spec: { endpoints: { relabelings?: { targetLabel?: string; replacement?: string }[] }[] };
    };
    assert.deepEqual(monitor.spec.endpoints[0]?.relabelings, [{ targetLabel: 'job', replacement: 'chassis' }]);
    const without = kubernetesObjects({ ...shop, serviceMonitor: false, migration: false });
    assert.ok(!without.some((object) => object.kind === 'ServiceMonitor' || object.kind === 'Job'));
  });

  it('every object matches the Kubernetes JSON schemas (kubernetes-models), and a broken one is refused', () => {
    validateKubernetesObjects(objects);
    const deployment = structuredClone(ofKind(objects, 'Deployment', 'shop-api'));
    (deployment.spec as { replicas: unknown }).replicas = 'three';
    assert.throws(() => validateKubernetesObjects([deployment]), /Deployment shop-api: .*replicas/);
    assert.throws(() => validateKubernetesObjects([{ kind: 'Secret', metadata: { name: 'x' } }]), /no schema/);
  });

  it('the Deployment: resources, restricted security, probes on the ops port, a grace period longer than the drain', () => {
    const deployment = ofKind(objects, 'Deployment', 'shop-api');
    const pod = deployment.spec!.template.spec!;
    const container = pod.containers[0]!;
    assert.equal(deployment.spec!.replicas, 3);
    assert.deepEqual(container.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } });
    assert.equal(pod.securityContext!.runAsNonRoot, true);
    assert.ok((pod.securityContext!.runAsUser ?? 0) > 0);
    assert.equal(container.securityContext!.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext!.allowPrivilegeEscalation, false);
    assert.deepEqual(container.securityContext!.capabilities!.drop, ['ALL']);
    assert.deepEqual(container.volumeMounts, [{ name: 'tmp', mountPath: '/tmp' }], 'only /tmp is writable');
    assert.deepEqual(
      container.ports!.map((port) => [port.name, port.containerPort]),
      [
        ['ops', 9400],
        ['http', 3000],
      ],
    );
    assert.equal(container.startupProbe!.httpGet!.path, '/health/live');
    assert.equal(container.livenessProbe!.httpGet!.path, '/health/live');
    assert.equal(container.readinessProbe!.httpGet!.path, '/health/ready');
    for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
      assert.equal(probe!.httpGet!.port, 'ops');
    }
    const preStop = container.lifecycle!.preStop!.sleep!.seconds;
    assert.equal(preStop, 5);
    assert.ok(pod.terminationGracePeriodSeconds! > preStop + 20, 'preStop and the 20 s drain fit in the grace period');
    const config = ofKind(objects, 'ConfigMap', 'shop-api').data!;
    assert.equal(config.CHASSIS_DRAIN_TIMEOUT_MS, '20000', 'the node drains within what the grace period expects');
    assert.equal(config.SERVICES, 'catalog,cart');
    assert.equal(config.PORT, '3000');
    assert.equal(ofKind(objects, 'ConfigMap', 'shop-worker').data!.PORT, 'off');
    assert.equal(ofKind(objects, 'ConfigMap', 'shop-worker').data!.PAYMENTS_MODE, 'live');
  });

  it('a gRPC port: a named container port, a Service port, ingress from the namespace, GRPC_PORT, a gRPC readiness probe', () => {
    const withGrpc = kubernetesObjects({
      ...shop,
      groups: [{ ...shop.groups[0]!, grpcPort: 50051 }, shop.groups[1]!],
    });
    validateKubernetesObjects(withGrpc);
    const container = ofKind(withGrpc, 'Deployment', 'shop-api').spec!.template.spec!.containers[0]!;
    assert.deepEqual(
      container.ports!.map((port) => [port.name, port.containerPort]),
      [
        ['ops', 9400],
        ['http', 3000],
        ['grpc', 50051],
      ],
    );
    // Kubernetes' own gRPC probe asks grpc.health.v1.Health/Check; liveness stays on /health/live.
    assert.deepEqual(container.readinessProbe!.grpc, { port: 50051 });
    assert.equal(container.readinessProbe!.httpGet, undefined);
    assert.equal(container.livenessProbe!.httpGet!.path, '/health/live');
    assert.equal(container.startupProbe!.httpGet!.path, '/health/live');
    assert.deepEqual(
      ofKind(withGrpc, 'Service', 'shop-api').spec!.ports!.find((port) => port.name === 'grpc'),
      { name: 'grpc', port: 50051, targetPort: 'grpc', protocol: 'TCP' },
    );
    const config = ofKind(withGrpc, 'ConfigMap', 'shop-api').data!;
    assert.equal(config.GRPC_PORT, '50051');
    assert.equal(config.GRPC_HOST, '0.0.0.0', 'the gRPC server takes traffic from outside the pod');
    const ingress = ofKind(withGrpc, 'NetworkPolicy', 'shop-api').spec!.ingress!;
    assert.deepEqual(
      ingress.find((rule) => rule.ports?.some((port) => port.port === 50051)),
      { from: [{ podSelector: {} }], ports: [{ port: 50051, protocol: 'TCP' }] },
      'gRPC from the app’s own pods only',
    );
    // A group without one gets none of it.
    const worker = ofKind(withGrpc, 'Deployment', 'shop-worker').spec!.template.spec!.containers[0]!;
    assert.equal(worker.readinessProbe!.httpGet!.path, '/health/ready');
    assert.ok(!worker.ports!.some((port) => port.name === 'grpc'));
    assert.equal(ofKind(withGrpc, 'ConfigMap', 'shop-worker').data!.GRPC_PORT, undefined);
    assert.throws(
      () => kubernetesObjects({ ...shop, groups: [{ ...shop.groups[0]!, grpcPort: 3000 }] }),
      /grpcPort.*HTTP port|HTTP port/,
    );
    assert.throws(() => kubernetesObjects({ ...shop, groups: [{ ...shop.groups[0]!, grpcPort: 9400 }] }), /ops port/);
  });

  it('labels: app.kubernetes.io/* everywhere, track: stable on the pods, Services and budgets select without track', () => {
    const deployment = ofKind(objects, 'Deployment', 'shop-worker');
    const podLabels = deployment.spec!.template.metadata!.labels!;
    assert.equal(podLabels.track, 'stable');
    assert.equal(deployment.spec!.selector.matchLabels!.track, 'stable');
    for (const key of ['name', 'instance', 'component', 'part-of', 'version', 'managed-by']) {
      assert.ok(podLabels[`app.kubernetes.io/${key}`], key);
    }
    for (const object of objects) assert.equal(object.metadata!.labels!['app.kubernetes.io/name'], 'shop');
    const selector = ofKind(objects, 'Service', 'shop-worker').spec!.selector!;
    assert.ok(!('track' in selector));
    for (const [key, value] of Object.entries(selector)) assert.equal(podLabels[key], value, 'selects the pods');
    assert.ok(!('track' in ofKind(objects, 'PodDisruptionBudget', 'shop-worker').spec!.selector!.matchLabels!));
    assert.equal(ofKind(objects, 'HorizontalPodAutoscaler', 'shop-api').spec!.maxReplicas, 10);
    assert.equal(ofKind(objects, 'HorizontalPodAutoscaler', 'shop-api').spec!.minReplicas, 3);
  });

  it('infrastructure and secrets by reference only: no value of them is written anywhere', () => {
    const env = ofKind(objects, 'Deployment', 'shop-api').spec!.template.spec!.containers[0]!.env!;
    const byName = new Map(env.map((variable) => [variable.name, variable]));
    assert.deepEqual(byName.get('CHASSIS_TRANSPORT')!.valueFrom, { secretKeyRef: { name: 'shop-broker', key: 'url' } });
    assert.deepEqual(byName.get('DATABASE_URL')!.valueFrom, { secretKeyRef: { name: 'shop-db', key: 'url' } });
    assert.deepEqual(byName.get('REDIS_URL')!.valueFrom, { configMapKeyRef: { name: 'shop-cache', key: 'url' } });
    assert.deepEqual(byName.get('CHASSIS_JWT_SECRET')!.valueFrom, {
      secretKeyRef: { name: 'shop-jwt', key: 'secret' },
    });
    assert.ok(!objects.some((object) => (object.kind as string) === 'Secret'));
    const text = JSON.stringify(objects);
    assert.doesNotMatch(text, /nats:\/\/|postgres:\/\/|redis:\/\//);
  });

  it('the migration Job runs the image with MIGRATE_ONLY for every service, and the same references', () => {
    const job = ofKind(objects, 'Job', 'shop-migrate');
    const container = job.spec!.template.spec!.containers[0]!;
    assert.equal(container.image, shop.image);
    const env = new Map(container.env!.map((variable) => [variable.name, variable]));
    assert.equal(env.get('MIGRATE_ONLY')!.value, 'true');
    assert.equal(env.get('SERVICES')!.value, 'catalog,cart,payments');
    assert.ok(env.get('DATABASE_URL')!.valueFrom!.secretKeyRef);
    assert.equal(job.spec!.template.spec!.restartPolicy, 'Never');
    assert.equal(container.securityContext!.readOnlyRootFilesystem, true);
    assert.equal(job.metadata!.annotations!['argocd.argoproj.io/hook'], 'PreSync');
  });

  it('refuses a topology that cannot deploy, naming the problem', () => {
    assert.throws(() => kubernetesObjects({ ...shop, app: 'Shop_App' }), /app/);
    assert.throws(
      () => kubernetesObjects({ ...shop, groups: [shop.groups[0]!, { ...shop.groups[0]!, replicas: 1 }] }),
      /used twice/,
    );
    assert.throws(() => kubernetesObjects({ ...shop, groups: [{ ...shop.groups[0]!, httpPort: 9400 }] }), /ops port/);
    assert.throws(() => appTopologySchema.parse({ ...shop, infra: { transport: { secret: 's' } } }));
  });

  it('writes YAML files and a kustomization that read back as the same objects, YAML 1.1-safe', async () => {
    const files = kubernetesFiles(objects, { header: 'generated' });
    assert.deepEqual(
      [...files.keys()],
      [
        'workloads/api.yaml',
        'workloads/worker.yaml',
        'workloads/migration.yaml',
        'api.yaml',
        'worker.yaml',
        'workloads/kustomization.yaml',
        'kustomization.yaml',
      ],
    );
    const readBack = [...files]
      .filter(([name]) => !name.endsWith('kustomization.yaml'))
      .flatMap(([, text]) => parseAllDocuments(text).map((document) => document.toJS()));
    const key = (object: unknown) => JSON.stringify(object);
    assert.deepEqual(readBack.map(key).sort(), objects.map(key).sort(), 'every object, once, as generated');
    // `off` unquoted is the boolean false to kubectl's YAML 1.1 parser: a ConfigMap value must stay a string.
    assert.match(files.get('workloads/worker.yaml')!, /PORT: "off"/);
    assert.ok(files.get('api.yaml')!.startsWith('# generated\n'));
    const dir = await mkdtemp(join(tmpdir(), 'chassis-deploy-'));
    try {
      await writeFile(join(dir, 'stale.yaml'), 'left from a group since removed');
      await writeKubernetesFiles(dir, files);
      const written = (await readdir(dir, { recursive: true })).filter((name) => name.endsWith('.yaml'));
      assert.deepEqual(written.sort(), [...files.keys()].sort(), 'stale files removed');
      assert.equal(await readFile(join(dir, 'api.yaml'), 'utf8'), files.get('api.yaml'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('kubectl kustomize builds the written files', {
    skip: skipUnlessInstalled('kubectl', 'Debian kubernetes-client'),
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chassis-deploy-'));
    try {
      await writeKubernetesFiles(dir, kubernetesFiles(objects));
      const { stdout } = await run('kubectl', ['kustomize', dir], { maxBuffer: 16 * 1024 * 1024 });
      const built = parseAllDocuments(stdout).map((document) => document.toJS() as KubernetesObject);
      assert.equal(built.length, objects.length);
      validateKubernetesObjects(built);
      // The workloads alone, as a canary overlay takes them.
      const workloads = await run('kubectl', ['kustomize', join(dir, 'workloads')], { maxBuffer: 16 * 1024 * 1024 });
      const kinds = parseAllDocuments(workloads.stdout).map((document) => (document.toJS() as KubernetesObject).kind);
      assert.deepEqual([...new Set(kinds)].sort(), ['ConfigMap', 'Deployment', 'Job']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('@chassis/deploy: TLS certificates from Secrets', () => {
  const tls = {
    broker: { secret: 'shop-broker-tls', clientCertificate: true },
    database: { secret: 'shop-db-tls' },
  };
  const objects = kubernetesObjects({ ...shop, tls });
  type Workload = Extract<KubernetesObject, { kind: 'Deployment' | 'Job' }>;
  const workloads = objects.filter(
    (object): object is Workload => object.kind === 'Deployment' || object.kind === 'Job',
  );
  const byName = <T extends { name?: string }>(items: readonly T[] | undefined) =>
    new Map((items ?? []).map((item) => [item.name, item]));

  it('mounts each Secret read-only in every Deployment and the Job, readable by the pod’s group only', () => {
    validateKubernetesObjects(objects);
    assert.deepEqual(
      workloads.map((workload) => `${workload.kind}/${workload.metadata!.name}`),
      ['Deployment/shop-api', 'Deployment/shop-worker', 'Job/shop-migrate'],
    );
    for (const workload of workloads) {
      const pod = workload.spec!.template.spec!;
      const container = pod.containers[0]!;
      const volumes = byName(pod.volumes);
      assert.deepEqual(volumes.get('broker-tls')!.secret, { secretName: 'shop-broker-tls', defaultMode: 0o440 });
      assert.deepEqual(volumes.get('database-tls')!.secret, { secretName: 'shop-db-tls', defaultMode: 0o440 });
      assert.ok(volumes.has('tmp'), 'the /tmp volume stays');
      assert.deepEqual(
        container.volumeMounts!.map((mount) => [mount.name, mount.mountPath, mount.readOnly ?? false]),
        [
          ['tmp', '/tmp', false],
          ['broker-tls', '/etc/chassis/tls', true],
          ['database-tls', '/etc/chassis/pg', true],
        ],
      );
      // 0440 is root's and the group's: the files get the pod's fsGroup, and the node runs as uid 1000 in it.
      const security = pod.securityContext!;
      assert.equal(security.fsGroup, security.runAsGroup);
      assert.equal(container.securityContext!.readOnlyRootFilesystem, true, 'still nothing writable');
      const env = byName(container.env);
      assert.equal(env.get('CHASSIS_TLS_CA_FILE')!.value, '/etc/chassis/tls/ca.crt');
      assert.equal(env.get('CHASSIS_TLS_CERT_FILE')!.value, '/etc/chassis/tls/tls.crt');
      assert.equal(env.get('CHASSIS_TLS_KEY_FILE')!.value, '/etc/chassis/tls/tls.key');
      assert.ok(env.get('DATABASE_URL')!.valueFrom!.secretKeyRef, 'PostgreSQL’s files are named in its URL');
      assert.ok(![...env.keys()].some((name) => name?.startsWith('PGSSL')));
    }
    assert.deepEqual(TLS_MOUNT_PATHS, { broker: '/etc/chassis/tls', database: '/etc/chassis/pg' });
  });

  it('a broker CA alone when the broker does not verify clients; nothing without tls; tls.database needs a database', () => {
    const caOnly = kubernetesObjects({ ...shop, tls: { broker: { secret: 'shop-broker-tls' } } });
    const deployment = caOnly.find((object) => object.kind === 'Deployment') as Workload;
    const container = deployment.spec!.template.spec!.containers[0]!;
    assert.deepEqual(
      container.env!.filter((variable) => variable.name.startsWith('CHASSIS_TLS_')).map((variable) => variable.name),
      ['CHASSIS_TLS_CA_FILE'],
    );
    assert.deepEqual(
      container.volumeMounts!.map((mount) => mount.mountPath),
      ['/tmp', '/etc/chassis/tls'],
    );
    for (const object of kubernetesObjects(shop)) {
      assert.doesNotMatch(JSON.stringify(object), /CHASSIS_TLS_|\/etc\/chassis/);
    }
    assert.deepEqual(tlsPatches(shop), []);
    assert.throws(
      () =>
        kubernetesObjects({ ...shop, infra: { transport: shop.infra.transport }, tls: { database: { secret: 'x' } } }),
      /infra\.database/,
    );
    assert.throws(() => appTopologySchema.parse({ ...shop, tls: { broker: { secret: '' } } }));
    assert.throws(() => appTopologySchema.parse({ ...shop, tls: { cache: { secret: 'x' } } }), /cache/);
  });

  it('tlsPatches: one strategic-merge patch per Deployment and the Job, the TLS parts only', () => {
    const patches = tlsPatches({ ...shop, tls });
    assert.deepEqual(
      patches.map((patch) => `${patch.kind}/${patch.metadata.name}`),
      workloads.map((workload) => `${workload.kind}/${workload.metadata!.name}`),
    );
    for (const patch of patches) {
      assert.deepEqual(Object.keys(patch.spec.template.spec), ['volumes', 'containers']);
      assert.ok(!patch.spec.template.spec.volumes.some((volume) => volume.name === 'tmp'));
      assert.ok(!patch.spec.template.spec.containers[0]!.env.some((variable) => variable.name === 'DATABASE_URL'));
    }
  });

  it('kubectl kustomize: the base without tls and the patches give the pods generated with tls', {
    skip: skipUnlessInstalled('kubectl', 'Debian kubernetes-client'),
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chassis-deploy-'));
    try {
      await writeKubernetesFiles(join(dir, 'base'), kubernetesFiles(kubernetesObjects(shop)));
      await writeFile(join(dir, 'tls.yaml'), yamlDocuments(tlsPatches({ ...shop, tls })));
      // The fields every kubectl's Kustomize reads (down to Debian's kubectl 1.20), as SimpleBank's overlays.
      await writeFile(
        join(dir, 'kustomization.yaml'),
        'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nbases:\n  - base\npatchesStrategicMerge:\n  - tls.yaml\n',
      );
      const { stdout } = await run('kubectl', ['kustomize', dir], { maxBuffer: 16 * 1024 * 1024 });
      const built = parseAllDocuments(stdout).map((document) => document.toJS() as KubernetesObject);
      validateKubernetesObjects(built);
      // Kustomize puts a patch's new list items first: compare the lists by their keys.
      const sorted = <T>(items: readonly T[] | undefined, key: (item: T) => string) =>
        [...(items ?? [])].sort((a, b) => key(a).localeCompare(key(b)));
      const pod = (workload: Workload) => {
        const spec = workload.spec!.template.spec!;
        const container = spec.containers[0]!;
        return {
          volumes: sorted(spec.volumes, (volume) => volume.name),
          volumeMounts: sorted(container.volumeMounts, (mount) => mount.mountPath),
          env: sorted(container.env, (variable) => variable.name),
        };
      };
      for (const expected of workloads) {
        const found = built.find(
          (object) => object.kind === expected.kind && object.metadata?.name === expected.metadata!.name,
        ) as Workload | undefined;
        assert.ok(found, expected.metadata!.name);
        assert.deepEqual(pod(found), pod(expected), `${expected.kind} ${expected.metadata!.name}`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
