import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import type { KubernetesObject } from './objects.ts';

/** The JSON-schema model of each kind the generator makes (kubernetes-models, the API's own schemas). */
const models = {
  Deployment: (object) => new Deployment(object as Deployment).validate(),
  Service: (object) => new Service(object as Service).validate(),
  ConfigMap: (object) => new ConfigMap(object as ConfigMap).validate(),
  HorizontalPodAutoscaler: (object) => new HorizontalPodAutoscaler(object as HorizontalPodAutoscaler).validate(),
  PodDisruptionBudget: (object) => new PodDisruptionBudget(object as PodDisruptionBudget).validate(),
  NetworkPolicy: (object) => new NetworkPolicy(object as NetworkPolicy).validate(),
  Job: (object) => new Job(object as Job).validate(),
  ServiceMonitor: (object) => new ServiceMonitor(object as ServiceMonitor).validate(),
} satisfies Record<KubernetesObject['kind'], (object: unknown) => void>;

/**
 * Checks objects against the Kubernetes JSON schemas (and prometheus-operator's for ServiceMonitor):
 * throws one error naming every object that does not conform, and why. Objects of other kinds (from an
 * overlay, say) are refused rather than waved through.
 */
export function validateKubernetesObjects(objects: readonly { kind?: unknown; metadata?: { name?: unknown } }[]): void {
  const problems: string[] = [];
  for (const object of objects) {
    const label = `${String(object.kind)} ${String(object.metadata?.name)}`;
    const validate = models[object.kind as keyof typeof models] as ((object: unknown) => void) | undefined;
    if (!validate) {
      problems.push(`${label}: no schema for this kind here`);
      continue;
    }
    try {
      validate(object);
    } catch (error) {
      problems.push(`${label}: ${(error as Error).message}`);
    }
  }
  if (problems.length > 0)
    throw new Error(`Objects that do not match the Kubernetes schemas:\n- ${problems.join('\n- ')}`);
}
