import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import type { IJob } from 'kubernetes-models/batch/v1';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type {
  IConfigMap,
  IContainer,
  IContainerPort,
  IEnvVar,
  IPodSpec,
  IService,
  IServicePort,
  IVolume,
  IVolumeMount,
} from 'kubernetes-models/v1';
import {
  type AppTopology,
  appTopologySchema,
  type ResolvedGroup,
  type ResolvedTopology,
  type ValueFrom,
} from './topology.ts';

/**
 * A strategic-merge patch of a workload's pod: what an overlay adds to the base's Deployments and Job.
 * Lists merge by their keys (volumes and env by `name`, mounts by `mountPath`, containers by `name`), so
 * the base's `/tmp` volume and its variables stay.
 */
export interface PodPatch {
  apiVersion: string;
  kind: 'Deployment' | 'Job';
  metadata: { name: string };
  spec: {
    template: {
      spec: { volumes: IVolume[]; containers: { name: string; volumeMounts: IVolumeMount[]; env: IEnvVar[] }[] };
    };
  };
}

export type KubernetesObject =
  | IDeployment
  | IService
  | IConfigMap
  | IHorizontalPodAutoscaler
  | IPodDisruptionBudget
  | INetworkPolicy
  | IJob
  | IServiceMonitor;

/** The user the image runs as (`deploy/Dockerfile`'s `USER`): the node image's `node`, by number. */
const RUN_AS = 1000;
const OPS = 'ops';
const HTTP = 'http';
const GRPC = 'grpc';
/** What the grace period keeps beyond preStop and the drain, for the exit itself. */
const GRACE_MARGIN_SECONDS = 10;

/** Where the Secrets of the topology's `tls` are mounted: the paths docs/configuration.md's TLS section names. */
export const TLS_MOUNT_PATHS = { broker: '/etc/chassis/tls', database: '/etc/chassis/pg' } as const;
/**
 * The certificates' mode: read by their owner (root) and their group — the pod's `fsGroup`, which the
 * kubelet gives the files and which the node's uid 1000 runs in — and by no one else (a private key).
 */
const CERTIFICATE_FILE_MODE = 0o440;

/** The labels that say what a pod is; Services select on these, never on `track`. */
export function appLabels(app: string, component: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': app,
    'app.kubernetes.io/instance': app,
    'app.kubernetes.io/component': component,
  };
}

/**
 * Every Kubernetes object the app needs, per group: Deployment, Service, ConfigMap,
 * HorizontalPodAutoscaler, PodDisruptionBudget, NetworkPolicy (and ServiceMonitor when asked); then the
 * migration Job. Deterministic: the same topology gives the same objects, in the same order.
 */
export function kubernetesObjects(topology: AppTopology): KubernetesObject[] {
  const resolved = appTopologySchema.parse(topology);
  const objects: KubernetesObject[] = [];
  for (const group of resolved.groups) {
    objects.push(
      deployment(resolved, group),
      service(resolved, group),
      configMap(resolved, group),
      autoscaler(resolved, group),
      disruptionBudget(resolved, group),
      networkPolicy(resolved, group),
    );
    if (resolved.serviceMonitor) objects.push(serviceMonitor(resolved, group));
  }
  if (resolved.migration !== false) objects.push(migrationJob(resolved, resolved.migration.env));
  return objects;
}

/**
 * What the topology's `tls` adds to the workloads (each Deployment and the migration Job), as
 * strategic-merge patches: an overlay (production) applies them to a base generated without `tls`
 * (shared with staging), and gets the pods `kubernetesObjects` makes with it. Plain
 * `patchesStrategicMerge` files: every kubectl's Kustomize reads them. Empty without `tls`.
 */
export function tlsPatches(topology: AppTopology): PodPatch[] {
  const resolved = appTopologySchema.parse(topology);
  const { volumes, volumeMounts, env } = tlsMounts(resolved);
  if (volumes.length === 0) return [];
  const patches: PodPatch[] = [];
  for (const object of kubernetesObjects(topology)) {
    if (object.kind !== 'Deployment' && object.kind !== 'Job') continue;
    const containers = object.spec?.template.spec?.containers ?? [];
    patches.push({
      apiVersion: object.apiVersion,
      kind: object.kind,
      metadata: { name: object.metadata!.name! },
      spec: {
        template: {
          spec: { volumes, containers: containers.map((container) => ({ name: container.name, volumeMounts, env })) },
        },
      },
    });
  }
  return patches;
}

function objectName(topology: ResolvedTopology, group: string): string {
  return `${topology.app}-${group}`;
}

function labels(topology: ResolvedTopology, component: string): Record<string, string> {
  return {
    ...appLabels(topology.app, component),
    'app.kubernetes.io/part-of': topology.app,
    'app.kubernetes.io/version': topology.version,
    'app.kubernetes.io/managed-by': 'chassis-deploy',
  };
}

function envFrom(name: string, from: ValueFrom): IEnvVar {
  return 'secret' in from
    ? { name, valueFrom: { secretKeyRef: { name: from.secret, key: from.key } } }
    : { name, valueFrom: { configMapKeyRef: { name: from.configMap, key: from.key } } };
}

/** The variables that come from the user's Secrets and ConfigMaps, and the pod's own name as NODE_ID. */
function referencedEnv(topology: ResolvedTopology): IEnvVar[] {
  const env: IEnvVar[] = [
    { name: 'NODE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    envFrom('CHASSIS_TRANSPORT', topology.infra.transport),
  ];
  if (topology.infra.database) env.push(envFrom('DATABASE_URL', topology.infra.database));
  if (topology.infra.redis) env.push(envFrom('REDIS_URL', topology.infra.redis));
  for (const [name, from] of Object.entries(topology.secretEnv)) env.push(envFrom(name, from));
  return env;
}

/** The volumes, mounts and variables that the topology's `tls` adds to every pod (none without it). */
function tlsMounts(topology: ResolvedTopology): { volumes: IVolume[]; volumeMounts: IVolumeMount[]; env: IEnvVar[] } {
  const volumes: IVolume[] = [];
  const volumeMounts: IVolumeMount[] = [];
  const env: IEnvVar[] = [];
  // The whole Secret, not `items`: a CA-only Secret has no tls.crt, and a missing item fails the mount.
  const mount = (volume: string, secret: string, path: string) => {
    volumes.push({ name: volume, secret: { secretName: secret, defaultMode: CERTIFICATE_FILE_MODE } });
    volumeMounts.push({ name: volume, mountPath: path, readOnly: true });
  };
  const { broker, database } = topology.tls;
  if (broker) {
    mount('broker-tls', broker.secret, TLS_MOUNT_PATHS.broker);
    env.push({ name: 'CHASSIS_TLS_CA_FILE', value: `${TLS_MOUNT_PATHS.broker}/ca.crt` });
    if (broker.clientCertificate) {
      env.push(
        { name: 'CHASSIS_TLS_CERT_FILE', value: `${TLS_MOUNT_PATHS.broker}/tls.crt` },
        { name: 'CHASSIS_TLS_KEY_FILE', value: `${TLS_MOUNT_PATHS.broker}/tls.key` },
      );
    }
  }
  // PostgreSQL reads its files from DATABASE_URL (`sslrootcert=/etc/chassis/pg/ca.crt`), as libpq does.
  if (database) mount('database-tls', database.secret, TLS_MOUNT_PATHS.database);
  return { volumes, volumeMounts, env };
}

/** Non-root, nothing writable but the /tmp volume, no privileges: what `restricted` Pod Security asks. */
function podSecurity(
  topology: ResolvedTopology,
): Pick<IPodSpec, 'securityContext' | 'automountServiceAccountToken' | 'volumes'> {
  return {
    automountServiceAccountToken: false,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: RUN_AS,
      runAsGroup: RUN_AS,
      fsGroup: RUN_AS,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }, ...tlsMounts(topology).volumes],
  };
}

function containerSecurity(topology: ResolvedTopology): Pick<IContainer, 'securityContext' | 'volumeMounts'> {
  return {
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, ...tlsMounts(topology).volumeMounts],
  };
}

function deployment(topology: ResolvedTopology, group: ResolvedGroup): IDeployment {
  const name = objectName(topology, group.name);
  const podLabels = { ...labels(topology, group.name), track: 'stable' };
  const drainSeconds = Math.ceil(topology.drainTimeoutMs / 1000);
  const ports: IContainerPort[] = [{ name: OPS, containerPort: topology.opsPort, protocol: 'TCP' }];
  if (group.httpPort !== undefined) ports.push({ name: HTTP, containerPort: group.httpPort, protocol: 'TCP' });
  if (group.grpcPort !== undefined) ports.push({ name: GRPC, containerPort: group.grpcPort, protocol: 'TCP' });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels: podLabels },
    spec: {
      replicas: group.replicas,
      revisionHistoryLimit: 5,
      // `track` is in the selector so that a canary Deployment's pods are never counted as this one's.
      selector: { matchLabels: { ...appLabels(topology.app, group.name), track: 'stable' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: {
          labels: podLabels,
          annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(topology.opsPort) },
        },
        spec: {
          ...podSecurity(topology),
          // SIGTERM starts the drain (not ready, stop consuming, finish in flight, flush the outbox); the
          // grace period covers preStop, the whole drain and the exit, so the kubelet never cuts it short.
          terminationGracePeriodSeconds: topology.preStopSeconds + drainSeconds + GRACE_MARGIN_SECONDS,
          containers: [
            {
              name: 'node',
              image: topology.image,
              imagePullPolicy: 'IfNotPresent',
              ports,
              envFrom: [{ configMapRef: { name } }],
              env: [...referencedEnv(topology), ...tlsMounts(topology).env],
              resources: group.resources,
              // Starting includes waiting for the database and migrating (up to a minute by default).
              startupProbe: {
                httpGet: { path: '/health/live', port: OPS },
                periodSeconds: 2,
                failureThreshold: 60,
                timeoutSeconds: 2,
              },
              // A gRPC server's readiness is asked over gRPC itself (the chassis's health service answers
              // from the node's readiness, so it also proves the gRPC listener up): a pod whose listener
              // failed gets no gRPC traffic. The probe takes a port number only, not a name.
              readinessProbe: {
                ...(group.grpcPort === undefined
                  ? { httpGet: { path: '/health/ready', port: OPS } }
                  : { grpc: { port: group.grpcPort } }),
                periodSeconds: 5,
                failureThreshold: 2,
                timeoutSeconds: 2,
              },
              // Liveness stays on the ops port even with gRPC: the health service reports readiness, and a
              // database outage must take a pod out of the Service, not restart it.
              livenessProbe: {
                httpGet: { path: '/health/live', port: OPS },
                periodSeconds: 10,
                failureThreshold: 3,
                timeoutSeconds: 2,
              },
              // The endpoints controller and the proxies learn of the pod's end a little after SIGTERM
              // would have closed its listeners; serving on meanwhile drops no request.
              ...(topology.preStopSeconds > 0
                ? { lifecycle: { preStop: { sleep: { seconds: topology.preStopSeconds } } } }
                : {}),
              ...containerSecurity(topology),
            },
          ],
        },
      },
    },
  };
}

function service(topology: ResolvedTopology, group: ResolvedGroup): IService {
  const ports: IServicePort[] = [{ name: OPS, port: topology.opsPort, targetPort: OPS, protocol: 'TCP' }];
  if (group.httpPort !== undefined) {
    ports.push({ name: HTTP, port: group.httpPort, targetPort: HTTP, protocol: 'TCP' });
  }
  if (group.grpcPort !== undefined) {
    ports.push({ name: GRPC, port: group.grpcPort, targetPort: GRPC, protocol: 'TCP' });
  }
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: objectName(topology, group.name), labels: labels(topology, group.name) },
    // No `track`: stable and canary pods both receive traffic, in proportion to their replicas.
    spec: { type: 'ClusterIP', selector: appLabels(topology.app, group.name), ports },
  };
}

function configMap(topology: ResolvedTopology, group: ResolvedGroup): IConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: objectName(topology, group.name), labels: labels(topology, group.name) },
    data: {
      NODE_ENV: 'production',
      SERVICES: group.services.join(','),
      PORT: group.httpPort === undefined ? 'off' : String(group.httpPort),
      // The gateway listens on 127.0.0.1 unless told otherwise; in a pod it must take outside traffic.
      HOST: '0.0.0.0',
      OPS_PORT: String(topology.opsPort),
      CHASSIS_DRAIN_TIMEOUT_MS: String(topology.drainTimeoutMs),
      LOG_LEVEL: 'info',
      // As HOST for the gateway: a gRPC server listens on 127.0.0.1 unless told otherwise.
      ...(group.grpcPort === undefined ? {} : { GRPC_PORT: String(group.grpcPort), GRPC_HOST: '0.0.0.0' }),
      ...topology.env,
      ...group.env,
    },
  };
}

function autoscaler(topology: ResolvedTopology, group: ResolvedGroup): IHorizontalPodAutoscaler {
  const name = objectName(topology, group.name);
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name, labels: labels(topology, group.name) },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
      minReplicas: group.replicas,
      maxReplicas: Math.max(group.maxReplicas ?? group.replicas * 2, group.replicas, 2),
      metrics: [
        { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } },
      ],
      // Scaling down slowly: a node that leaves drains, and flapping would drain nodes for nothing.
      behavior: { scaleDown: { stabilizationWindowSeconds: 300 } },
    },
  };
}

function disruptionBudget(topology: ResolvedTopology, group: ResolvedGroup): IPodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: objectName(topology, group.name), labels: labels(topology, group.name) },
    // One pod at a time, never all: with one replica a node drain still goes on (minAvailable would block it).
    spec: { maxUnavailable: 1, selector: { matchLabels: appLabels(topology.app, group.name) } },
  };
}

/**
 * Ingress only: the ops port from the monitoring namespace (and the namespace itself), the HTTP port from
 * anywhere (an ingress controller, a load balancer), the gRPC port from the namespace's pods (the app's
 * own callers). Services otherwise talk through the broker, so nothing else comes in. Egress is left open: the broker, the database and the exchange are the user's, anywhere.
 */
function networkPolicy(topology: ResolvedTopology, group: ResolvedGroup): INetworkPolicy {
  const ingress: NonNullable<INetworkPolicy['spec']>['ingress'] = [
    {
      from: [
        { podSelector: {} },
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': topology.monitoringNamespace } } },
      ],
      ports: [{ port: topology.opsPort, protocol: 'TCP' }],
    },
  ];
  if (group.httpPort !== undefined) ingress.push({ ports: [{ port: group.httpPort, protocol: 'TCP' }] });
  if (group.grpcPort !== undefined) {
    ingress.push({ from: [{ podSelector: {} }], ports: [{ port: group.grpcPort, protocol: 'TCP' }] });
  }
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: objectName(topology, group.name), labels: labels(topology, group.name) },
    spec: { podSelector: { matchLabels: appLabels(topology.app, group.name) }, policyTypes: ['Ingress'], ingress },
  };
}

function serviceMonitor(topology: ResolvedTopology, group: ResolvedGroup): IServiceMonitor {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: { name: objectName(topology, group.name), labels: labels(topology, group.name) },
    spec: {
      selector: { matchLabels: appLabels(topology.app, group.name) },
      endpoints: [
        {
          port: OPS,
          path: '/metrics',
          interval: '15s',
          // The job the rules and dashboards of deploy/monitoring select on, as the plain scrape config names it.
          relabelings: [{ targetLabel: 'job', replacement: 'chassis' }],
        },
      ],
    },
  };
}

/**
 * Migrates every service's schema once, before the Deployments roll: the pipeline applies it, waits for
 * it to complete, then applies the rest (Argo CD does the same from the PreSync hook annotation). Nodes
 * migrate at start too, under the same per-service advisory lock, so a Job that did not run is not fatal.
 */
function migrationJob(topology: ResolvedTopology, env: Record<string, string>): IJob {
  const component = 'migration';
  const allServices = [...new Set(topology.groups.flatMap((group) => group.services))];
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: `${topology.app}-migrate`,
      labels: labels(topology, component),
      annotations: {
        'argocd.argoproj.io/hook': 'PreSync',
        'argocd.argoproj.io/hook-delete-policy': 'BeforeHookCreation',
      },
    },
    spec: {
      backoffLimit: 3,
      activeDeadlineSeconds: 600,
      template: {
        metadata: { labels: labels(topology, component) },
        spec: {
          ...podSecurity(topology),
          restartPolicy: 'Never',
          containers: [
            {
              name: 'migrate',
              image: topology.image,
              imagePullPolicy: 'IfNotPresent',
              env: [
                ...referencedEnv(topology),
                ...tlsMounts(topology).env,
                { name: 'NODE_ENV', value: 'production' },
                { name: 'SERVICES', value: allServices.join(',') },
                { name: 'PORT', value: 'off' },
                { name: 'OPS_PORT', value: 'off' },
                ...Object.entries({ ...topology.env, ...env }).map(([name, value]) => ({ name, value })),
              ],
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
              ...containerSecurity(topology),
            },
          ],
        },
      },
    },
  };
}
