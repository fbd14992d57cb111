import { fileURLToPath } from 'node:url';
import { type AppTopology, kubernetesManifests, type TlsSettings } from '@chassis/deploy';
import { distributedTopology } from './launcher.ts';

/** Where the generated base lives, and the overlays that patch it (staging, production, canary). */
export const KUBERNETES_DIR = fileURLToPath(new URL('../../../deploy/kubernetes/simplebank/', import.meta.url));

/** The image `deploy/Dockerfile` builds; each overlay sets the tag it deploys. */
export const SIMPLEBANK_IMAGE = 'ghcr.io/chassis/simplebank:latest';

/**
 * SimpleBank's topology for a cluster: the same process groups as `distributedTopology()` (edge with
 * the gateway, orders and market twice, the ledger), each group's processes becoming one Deployment's
 * replicas. The broker, the database, Redis, the exchange and the token secret are the user's: only
 * referenced here, from the Secret `simplebank-infra`, the ConfigMap `simplebank-infra` and the Secret
 * `simplebank-jwt` (docs/deploy.md shows how to create them).
 */
export function simplebankTopology(image = SIMPLEBANK_IMAGE): AppTopology {
  const groups = new Map<string, { name: string; services: string[]; replicas: number; httpPort?: number }>();
  for (const spec of distributedTopology()) {
    // `orders-1` and `orders-2` are two replicas of the group `orders`.
    const name = spec.name.replace(/-\d+$/, '');
    const group = groups.get(name);
    if (group) group.replicas++;
    else {
      groups.set(name, {
        name,
        services: spec.services.split(','),
        replicas: 1,
        ...(spec.port === undefined ? {} : { httpPort: spec.port }),
      });
    }
  }
  return {
    app: 'simplebank',
    image,
    version: '0.1.0',
    groups: [...groups.values()].map((group) =>
      group.httpPort === undefined
        ? group
        : {
            ...group,
            // The edge runs nine services and the gateway: more room than a one-service group.
            resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '512Mi' } },
          },
    ),
    infra: {
      transport: { secret: 'simplebank-infra', key: 'transport-url' },
      database: { secret: 'simplebank-infra', key: 'database-url' },
      redis: { secret: 'simplebank-infra', key: 'redis-url' },
    },
    secretEnv: {
      CHASSIS_JWT_SECRET: { secret: 'simplebank-jwt', key: 'secret' },
      EXCHANGE_URL: { configMap: 'simplebank-infra', key: 'exchange-url' },
    },
    serviceMonitor: false,
  };
}

/**
 * Production's TLS: the broker's CA and PostgreSQL's CA from these Secrets (cert-manager's, or created
 * with `kubectl create secret generic --from-file=ca.crt`), mounted at `/etc/chassis/tls` and
 * `/etc/chassis/pg`. Staging runs without: its base is the same, with no certificate.
 */
export const SIMPLEBANK_PRODUCTION_TLS: TlsSettings = {
  broker: { secret: 'simplebank-broker-tls' },
  database: { secret: 'simplebank-postgres-tls' },
};

/** The overlays that run on production's broker and database: production, and the canary beside it. */
export const TLS_OVERLAYS = ['production', 'canary'] as const;

/**
 * The generated files, by path under `deploy/kubernetes/simplebank/`: the base, and each TLS overlay's
 * `tls.yaml` (the strategic-merge patch that mounts production's certificates in every Deployment and the
 * migration Job). The overlays' other files are written by hand.
 */
export function simplebankManifests(): Map<string, string> {
  return kubernetesManifests({
    topology: simplebankTopology(),
    tls: SIMPLEBANK_PRODUCTION_TLS,
    tlsOverlays: TLS_OVERLAYS,
    source: 'apps/simplebank/src/kubernetes.ts',
    tlsName: 'SIMPLEBANK_PRODUCTION_TLS',
    command: 'npm run deploy:generate',
  });
}
