import { fileURLToPath } from 'node:url';
import { type AppTopology, kubernetesManifests, type TlsSettings } from '@chassis/deploy';
import { distributedTopology } from './launcher.ts';

/** Where the generated base lives, and the overlays that patch it (staging, production, canary). */
export const SHOP_KUBERNETES_DIR = fileURLToPath(new URL('../../../deploy/kubernetes/shop/', import.meta.url));

/** `UserService`'s port (the Shop's default, beside the News portal's 50051): container, Service, `GRPC_PORT`. */
export const SHOP_USERS_GRPC_PORT = 50052;

/** The image `deploy/Dockerfile` builds with `APP_WORKSPACE=apps/shop APP_ENTRY=apps/shop/src/main.ts`. */
export const SHOP_IMAGE = 'ghcr.io/chassis/shop:latest';

/**
 * The Shop's topology for a cluster: the process groups of `distributedTopology()` (the edge with the
 * gateway, orders twice, payments), each group's processes one Deployment's replicas. The broker
 * (RabbitMQ), the database and the token secret are the user's, referenced from the Secrets `shop-infra`
 * and `shop-jwt`. The group hosting `shop-users` serves gRPC `UserService` on its gRPC port.
 */
export function shopTopology(image = SHOP_IMAGE): AppTopology {
  const groups = new Map<
    string,
    { name: string; services: string[]; replicas: number; httpPort?: number; grpcPort?: number }
  >();
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
        ...(spec.services.split(',').includes('shop-users') ? { grpcPort: SHOP_USERS_GRPC_PORT } : {}),
      });
    }
  }
  return {
    app: 'shop',
    image,
    version: '0.1.0',
    groups: [...groups.values()].map((group) =>
      group.httpPort === undefined
        ? group
        : {
            ...group,
            // Five services and the gateway: more room than a one-service group.
            resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '512Mi' } },
          },
    ),
    infra: {
      transport: { secret: 'shop-infra', key: 'transport-url' },
      database: { secret: 'shop-infra', key: 'database-url' },
      redis: { secret: 'shop-infra', key: 'redis-url' },
    },
    secretEnv: { SHOP_JWT_SECRET: { secret: 'shop-jwt', key: 'secret' } },
    serviceMonitor: false,
  };
}

/**
 * Production's TLS: the broker's CA and PostgreSQL's CA from these Secrets, mounted at `/etc/chassis/tls`
 * and `/etc/chassis/pg`. Staging runs without: its base is the same, with no certificate.
 */
export const SHOP_PRODUCTION_TLS: TlsSettings = {
  broker: { secret: 'shop-broker-tls' },
  database: { secret: 'shop-postgres-tls' },
};

/** The overlays that run on production's broker and database: production, and the canary beside it. */
export const SHOP_TLS_OVERLAYS = ['production', 'canary'] as const;

/**
 * The generated files, by path under `deploy/kubernetes/shop/`: the base, and each TLS overlay's
 * `tls.yaml` (the strategic-merge patch that mounts production's certificates in every Deployment and the
 * migration Job). The overlays' other files are written by hand.
 */
export function shopManifests(): Map<string, string> {
  return kubernetesManifests({
    topology: shopTopology(),
    tls: SHOP_PRODUCTION_TLS,
    tlsOverlays: SHOP_TLS_OVERLAYS,
    source: 'apps/shop/src/kubernetes.ts',
    tlsName: 'SHOP_PRODUCTION_TLS',
    command: 'npm run deploy:generate:shop',
  });
}
