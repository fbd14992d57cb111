import { fileURLToPath } from 'node:url';
import { type AppTopology, kubernetesManifests, type TlsSettings } from '@chassis/deploy';
import { processGroups } from './topology.ts';

/** Where the generated base lives, and the overlays that patch it (staging, production, canary). */
export const KUBERNETES_DIR = fileURLToPath(new URL('../../../deploy/kubernetes/newsportal/', import.meta.url));

/** The image `deploy/Dockerfile` builds with `APP_WORKSPACE=apps/newsportal APP_ENTRY=apps/newsportal/src/main.ts`. */
export const NEWSPORTAL_IMAGE = 'ghcr.io/chassis/newsportal:latest';

/** Users' `GetUserData` port (the spec's 50051): its container port, Service port and `GRPC_PORT`. */
export const USERS_GRPC_PORT = 50051;

/**
 * The News portal's topology for a cluster: the process groups of `npm run start:newsportal:distributed`,
 * one Deployment each. The broker, the database and Redis are the user's, referenced from the Secret
 * `newsportal-infra` (docs/deploy.md shows how to create such a Secret). Users serves `GetUserData` on
 * its gRPC port, and recommendations reach it through users' Service by its DNS name.
 */
export function newsportalTopology(image = NEWSPORTAL_IMAGE): AppTopology {
  return {
    app: 'newsportal',
    image,
    version: '0.1.0',
    groups: processGroups.map((group) => ({
      name: group.name,
      services: group.services.split(','),
      replicas: group.gateway ? 2 : 1,
      ...(group.gateway ? { httpPort: 8080 } : {}),
      ...(group.services.includes('users') ? { grpcPort: USERS_GRPC_PORT } : {}),
      // The Service's short name: the pods run in the Service's namespace, whichever the overlay sets.
      ...(group.services.includes('recommendation')
        ? { env: { USERS_GRPC_ADDRESS: `newsportal-${usersGroup()}:${USERS_GRPC_PORT}` } }
        : {}),
    })),
    infra: {
      transport: { secret: 'newsportal-infra', key: 'transport-url' },
      database: { secret: 'newsportal-infra', key: 'database-url' },
      redis: { secret: 'newsportal-infra', key: 'redis-url' },
    },
    serviceMonitor: false,
  };
}

/** The process group that runs users (its Service is `newsportal-<group>`). */
function usersGroup(): string {
  const group = processGroups.find((candidate) => candidate.services.split(',').includes('users'));
  if (!group) throw new Error('No process group runs users');
  return group.name;
}

/**
 * Production's TLS: the broker's CA and PostgreSQL's CA from these Secrets, mounted at `/etc/chassis/tls`
 * and `/etc/chassis/pg`. Staging runs without: its base is the same, with no certificate.
 */
export const NEWSPORTAL_PRODUCTION_TLS: TlsSettings = {
  broker: { secret: 'newsportal-broker-tls' },
  database: { secret: 'newsportal-postgres-tls' },
};

/** The overlays that run on production's broker and database: production, and the canary beside it. */
export const TLS_OVERLAYS = ['production', 'canary'] as const;

/**
 * The generated files, by path under `deploy/kubernetes/newsportal/`: the base, and each TLS overlay's
 * `tls.yaml` (the strategic-merge patch that mounts production's certificates in every Deployment and the
 * migration Job). The overlays' other files are written by hand.
 */
export function newsportalManifests(): Map<string, string> {
  return kubernetesManifests({
    topology: newsportalTopology(),
    tls: NEWSPORTAL_PRODUCTION_TLS,
    tlsOverlays: TLS_OVERLAYS,
    source: 'apps/newsportal/src/kubernetes.ts',
    tlsName: 'NEWSPORTAL_PRODUCTION_TLS',
    command: 'npm run deploy:generate:newsportal',
  });
}
