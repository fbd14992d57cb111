import { z } from 'zod';

/**
 * What an app tells the generator about itself: which processes (service groups) it runs, how many of
 * each, and where its infrastructure is. Everything else — probes, security context, drain timing,
 * labels — follows from the chassis's conventions, so every Chassis app deploys the same way.
 */

/** A Kubernetes name: lower-case letters, digits and `-`, starting with a letter (DNS-1035 label). */
const name = z
  .string()
  .regex(/^[a-z]([-a-z0-9]*[a-z0-9])?$/, 'must be lower-case letters, digits and "-", starting with a letter')
  .max(40, 'is kept to 40 characters so that the generated names (with suffixes) stay under 63');

/**
 * Where an environment variable's value comes from: a key of a Secret or a ConfigMap that the user
 * creates in the cluster. The generator only ever writes the reference, never a value.
 */
export const valueFromSchema = z.union([
  z.object({ secret: z.string().min(1), key: z.string().min(1) }).strict(),
  z.object({ configMap: z.string().min(1), key: z.string().min(1) }).strict(),
]);

const quantity = z.string().regex(/^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/, 'must be a Kubernetes quantity');

const resourcesSchema = z
  .object({
    requests: z.object({ cpu: quantity, memory: quantity }).strict(),
    limits: z.object({ cpu: quantity.optional(), memory: quantity }).strict(),
  })
  .strict();

const envValues = z.record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name'), z.string());

/**
 * TLS to the broker and to PostgreSQL, with certificates from the user's Secrets mounted read-only in
 * every pod (the Deployments and the migration Job). A Secret of type `kubernetes.io/tls` (cert-manager's:
 * `ca.crt`, `tls.crt`, `tls.key`) or an Opaque one with those keys; a CA alone is enough when the server
 * does not verify clients.
 */
export const tlsSchema = z
  .object({
    /**
     * Mounted at `/etc/chassis/tls`: `CHASSIS_TLS_CA_FILE` is its `ca.crt`, and with `clientCertificate`
     * (a broker that verifies clients) `CHASSIS_TLS_CERT_FILE` / `CHASSIS_TLS_KEY_FILE` its `tls.crt` /
     * `tls.key`. The transport URL (the user's Secret) says `tls://` (NATS) or `amqps://` (RabbitMQ).
     */
    broker: z
      .object({ secret: z.string().min(1), clientCertificate: z.boolean().default(false) })
      .strict()
      .optional(),
    /**
     * Mounted at `/etc/chassis/pg`; PostgreSQL's TLS is configured in `DATABASE_URL` itself, as libpq's:
     * `?sslmode=verify-full&sslrootcert=/etc/chassis/pg/ca.crt` (and `sslcert`/`sslkey` for a client
     * certificate), so no variable is set here.
     */
    database: z
      .object({ secret: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict();

export const serviceGroupSchema = z
  .object({
    /** The process's name, e.g. `orders`: the Deployment is `<app>-<name>`. */
    name,
    /** The services it hosts (its `SERVICES`). */
    services: z.array(z.string().min(1)).min(1),
    replicas: z.number().int().min(1).default(1),
    /** Replicas the HorizontalPodAutoscaler may add, up to; default twice `replicas` (at least 2). */
    maxReplicas: z.number().int().min(1).optional(),
    /** The HTTP port of a process that serves one (the gateway); it also gets Service and ingress rules. */
    httpPort: z.number().int().min(1).max(65_535).optional(),
    /**
     * The gRPC port of a process that serves one (`@chassis/grpc`'s server): a container port named `grpc`,
     * a Service port, ingress from the namespace's pods, `GRPC_PORT` and `GRPC_HOST=0.0.0.0` in its
     * ConfigMap, and a native gRPC readiness probe (`grpc.health.v1.Health/Check`, which the chassis's
     * server answers from the node's readiness).
     */
    grpcPort: z.number().int().min(1).max(65_535).optional(),
    resources: resourcesSchema.default({
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '256Mi' },
    }),
    /** Extra environment of this group only (non-secret: it goes into the group's ConfigMap). */
    env: envValues.default({}),
  })
  .strict();

export const appTopologySchema = z
  .object({
    /** The app's name, e.g. `simplebank`: the prefix of every object and `app.kubernetes.io/name`. */
    app: name,
    /** The image every process runs (the one `deploy/Dockerfile` builds); overlays change its tag. */
    image: z.string().min(1),
    /** `app.kubernetes.io/version`. */
    version: z.string().min(1).default('0.1.0'),
    groups: z.array(serviceGroupSchema).min(1),
    /** The ops port every node serves `/health/*` and `/metrics` on (`OPS_PORT`). */
    opsPort: z.number().int().min(1).max(65_535).default(9400),
    /** The node's drain timeout (`CHASSIS_DRAIN_TIMEOUT_MS`); the grace period is longer. */
    drainTimeoutMs: z.number().int().positive().default(10_000),
    /** How long a pod keeps serving after it is told to stop, while the endpoints forget it. */
    preStopSeconds: z.number().int().min(0).default(5),
    /** Infrastructure, by reference: `CHASSIS_TRANSPORT`, `DATABASE_URL`, `REDIS_URL`. */
    infra: z
      .object({
        transport: valueFromSchema,
        database: valueFromSchema.optional(),
        redis: valueFromSchema.optional(),
      })
      .strict(),
    /** Certificates for TLS to the broker and the database, from Secrets (none by default). */
    tls: tlsSchema.default({}),
    /** Further variables from Secrets or ConfigMaps (e.g. `CHASSIS_JWT_SECRET`), by reference. */
    secretEnv: z.record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/), valueFromSchema).default({}),
    /** Non-secret environment of every group (its ConfigMaps). */
    env: envValues.default({}),
    /**
     * The Job that migrates every service's schema before the rollout: the image run with this extra
     * environment (an app's entry that sees `MIGRATE_ONLY=true` migrates and exits), or `false` for none.
     */
    migration: z
      .union([z.literal(false), z.object({ env: envValues.default({ MIGRATE_ONLY: 'true' }) }).strict()])
      .default({ env: { MIGRATE_ONLY: 'true' } }),
    /** A prometheus-operator ServiceMonitor per group (needs its CRD in the cluster). */
    serviceMonitor: z.boolean().default(false),
    /** The namespace Prometheus scrapes from, let through the NetworkPolicies to the ops port. */
    monitoringNamespace: z.string().min(1).default('monitoring'),
  })
  .strict()
  .superRefine((topology, ctx) => {
    if (topology.tls.database && !topology.infra.database) {
      ctx.addIssue({ code: 'custom', path: ['tls', 'database'], message: 'is set, but infra.database is not' });
    }
    const seen = new Set<string>();
    for (const [index, group] of topology.groups.entries()) {
      if (seen.has(group.name)) {
        ctx.addIssue({ code: 'custom', path: ['groups', index, 'name'], message: `"${group.name}" is used twice` });
      }
      seen.add(group.name);
      if (group.httpPort === topology.opsPort) {
        ctx.addIssue({ code: 'custom', path: ['groups', index, 'httpPort'], message: 'is the ops port' });
      }
      if (group.grpcPort !== undefined && [topology.opsPort, group.httpPort].includes(group.grpcPort)) {
        const taken = group.grpcPort === topology.opsPort ? 'the ops port' : 'the HTTP port';
        ctx.addIssue({ code: 'custom', path: ['groups', index, 'grpcPort'], message: `is ${taken}` });
      }
    }
  });

/** An app's topology as written (defaults filled in by `appTopologySchema.parse`). */
export type AppTopology = z.input<typeof appTopologySchema>;
export type ValueFrom = z.infer<typeof valueFromSchema>;
export type TlsSettings = z.input<typeof tlsSchema>;
export type ResolvedTopology = z.output<typeof appTopologySchema>;
export type ResolvedGroup = ResolvedTopology['groups'][number];
