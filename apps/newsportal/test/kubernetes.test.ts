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

  it('`kubectl kustomize` builds the base', { skip: kubectlMissing }, async () => {
    const { stdout } = await run('kubectl', ['kustomize', KUBERNETES_BASE_DIR], { maxBuffer: 16 * 1024 * 1024 });
    assert.match(stdout, /name: newsportal-edge/);
  });
});
