import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type KubernetesObject, kubernetesObjects, validateKubernetesObjects } from '@chassis/deploy';
import { kubernetesOverlaySuite, objectsOfKind, overlayBuilder } from '@chassis/deploy/testing';
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

/** The flag's environment variable, as the chassis's flag provider reads it. */
const QUOTE_AGE_ENV = `CHASSIS_FLAG_${QUOTE_AGE_FLAG.toUpperCase().replaceAll('-', '_')}`;

type ConfigMap = Extract<KubernetesObject, { kind: 'ConfigMap' }>;

const kubectlMissing = skipUnlessInstalled('kubectl', 'Debian kubernetes-client; .ci/run installs it');
const build = overlayBuilder(KUBERNETES_DIR);

describe('SimpleBank on Kubernetes: the generated base and the staging, production and canary overlays', () => {
  kubernetesOverlaySuite({
    dir: KUBERNETES_DIR,
    manifests: simplebankManifests,
    command: 'npm run deploy:generate',
    topology: simplebankTopology(),
    tls: SIMPLEBANK_PRODUCTION_TLS,
    overlays: {
      staging: { namespace: 'simplebank-staging', tag: 'staging' },
      production: { namespace: 'simplebank', tag: '0.1.0' },
      canary: { namespace: 'simplebank', tag: 'canary' },
    },
    skip: kubectlMissing,
  });

  it('the base follows distributedTopology: its groups, their replicas, every service once; schemas valid', () => {
    const topology = simplebankTopology();
    const objects = kubernetesObjects(topology);
    validateKubernetesObjects(objects);
    const deployments = objectsOfKind(objects, 'Deployment');
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
    const hosted = objectsOfKind(objects, 'ConfigMap').flatMap((config) => config.data!.SERVICES!.split(','));
    assert.deepEqual(hosted.sort(), [...new Set(processes.flatMap((p) => p.services.split(',')))].sort());
    assert.deepEqual(hosted.sort(), simplebankServiceNames().sort(), 'every SimpleBank service runs somewhere, once');
    const edge = objectsOfKind(objects, 'ConfigMap').find((config) => config.metadata!.name === 'simplebank-edge')!;
    assert.equal(edge.data!.PORT, '8080');
    assert.equal(edge.data!.HOST, '0.0.0.0', 'the gateway takes traffic from outside the pod');
    const job = objectsOfKind(objects, 'Job')[0]!;
    const jobServices = job.spec!.template.spec!.containers[0]!.env!.find((v) => v.name === 'SERVICES')!.value!;
    const withMigrations = simplebankServices({ secret: 'x', exchangeUrl: 'http://x' })
      .filter((service) => service.migrations !== undefined)
      .map((service) => service.name);
    for (const name of withMigrations) assert.ok(jobServices.split(',').includes(name), `the Job migrates ${name}`);
  });

  it(`the feature flag ${QUOTE_AGE_FLAG} per overlay: on in canary and staging, off in production`, {
    skip: kubectlMissing,
  }, async () => {
    const flagOf = async (overlay: string) => {
      const configs: ConfigMap[] = objectsOfKind(await build(overlay), 'ConfigMap');
      const edge = configs.find((config) => config.data?.SERVICES?.split(',').includes('market-data'));
      assert.ok(edge, `${overlay}: the ConfigMap of the group running market-data`);
      return edge.data![QUOTE_AGE_ENV];
    };
    assert.equal(await flagOf('canary'), 'true');
    assert.equal(await flagOf('staging'), 'true');
    assert.equal(await flagOf('production'), 'false');
  });
});
