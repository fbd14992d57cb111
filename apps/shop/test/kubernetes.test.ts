import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type KubernetesObject, kubernetesObjects, validateKubernetesObjects } from '@chassis/deploy';
import { pgliteTarget, skipUnlessInstalled } from '@chassis/testing';
import { SHOP_KUBERNETES_BASE_DIR, shopBaseFiles, shopTopology } from '../src/kubernetes.ts';
import { migrateShop } from '../src/migrate.ts';
import { shopServiceNames } from '../src/services.ts';

const run = promisify(execFile);
const kubectlMissing = skipUnlessInstalled('kubectl', 'Debian kubernetes-client; .ci/run installs it');

describe('The Shop on Kubernetes: the generated base', () => {
  it('the committed base is exactly what the generator makes (run `npm run deploy:generate:shop` after a change)', async () => {
    const expected = shopBaseFiles();
    const committed = (await readdir(SHOP_KUBERNETES_BASE_DIR, { recursive: true }))
      .filter((name) => name.endsWith('.yaml'))
      .sort();
    assert.deepEqual(committed, [...expected.keys()].sort());
    for (const [name, text] of expected) {
      assert.equal(await readFile(join(SHOP_KUBERNETES_BASE_DIR, name), 'utf8'), text, `${name} is out of date`);
    }
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

  it('builds with kubectl kustomize: the base, and the staging and production overlays', {
    skip: kubectlMissing,
  }, async () => {
    const build = async (dir: string) =>
      (await run('kubectl', ['kustomize', dir], { maxBuffer: 16 * 1024 * 1024 })).stdout;
    assert.match(await build(SHOP_KUBERNETES_BASE_DIR), /name: shop-migrate/);
    for (const [overlay, namespace, tag] of [
      ['staging', 'shop-staging', 'staging'],
      ['production', 'shop', '0.1.0'],
    ] as const) {
      const built = await build(join(SHOP_KUBERNETES_BASE_DIR, '..', 'overlays', overlay));
      assert.match(built, new RegExp(`namespace: ${namespace}\\n`));
      assert.match(built, new RegExp(`image: ghcr.io/chassis/shop:${tag.replaceAll('.', '\\.')}\\n`));
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
