import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type KubernetesObject, kubernetesObjects, validateKubernetesObjects } from '@chassis/deploy';
import { skipUnlessInstalled } from '@chassis/testing';
import { KUBERNETES_BASE_DIR, newsportalBaseFiles, newsportalTopology } from '../src/kubernetes.ts';
import { newsportalServiceNames } from '../src/services.ts';

const run = promisify(execFile);
const kubectlMissing = skipUnlessInstalled('kubectl', 'Debian kubernetes-client; .ci/run installs it');

describe('News portal on Kubernetes: the generated base', () => {
  it('the committed base is exactly what the generator makes (run `npm run deploy:generate:newsportal` after a change)', async () => {
    const expected = newsportalBaseFiles();
    const committed = (await readdir(KUBERNETES_BASE_DIR, { recursive: true }))
      .filter((name) => name.endsWith('.yaml'))
      .sort();
    assert.deepEqual(committed, [...expected.keys()].sort());
    for (const [name, text] of expected) {
      assert.equal(await readFile(join(KUBERNETES_BASE_DIR, name), 'utf8'), text, `${name} is out of date`);
    }
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
    const { stdout } = await run('kubectl', ['kustomize', KUBERNETES_BASE_DIR], { maxBuffer: 16 * 1024 * 1024 });
    assert.match(stdout, /name: newsportal-edge/);
  });
});
