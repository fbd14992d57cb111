import type { HealthCheck } from '@chassis/core';

/**
 * A service's `/health` in the health+json style of the book's services: an overall `status` and, for
 * its one dependency (the database, Redis), how long a round trip took (`metricValue`, in ms). The
 * result is kept for 10 s, so that a load balancer polling every instance does not load the dependency;
 * concurrent asks while a check runs share it.
 */
export interface HealthBody {
  status: 'pass' | 'fail';
  serviceId: string;
  description: string;
  checks: Record<string, HealthCheckEntry[]>;
}

export interface HealthCheckEntry {
  componentId: string;
  componentType: 'datastore';
  status: 'pass' | 'fail';
  metricValue: number;
  metricUnit: 'ms';
  time: string;
  output?: string;
}

export interface Dependency {
  /** The check's key prefix, e.g. `database` → `database:responseTime`. */
  name: string;
  /** What it is: `mysql`, `postgres`, `pglite`, `redis`. */
  componentId: () => string;
  /** One round trip; throws when it fails. */
  ping: () => Promise<void>;
}

export interface ServiceHealth {
  /** The health+json body, at most 10 s old. */
  report(): Promise<HealthBody>;
  /** The same, as a readiness check of the node (`ServiceSpec.health`). */
  check: HealthCheck;
}

export function cachedHealth(serviceId: string, dependency: Dependency, ttlMs = 10_000): ServiceHealth {
  let last: { at: number; body: HealthBody } | undefined;
  let running: Promise<HealthBody> | undefined;
  const measure = async (): Promise<HealthBody> => {
    const started = performance.now();
    let output: string | undefined;
    try {
      await dependency.ping();
    } catch (error) {
      output = `${dependency.componentId()}: ${error instanceof Error ? error.message : String(error)}`;
    }
    const status = output === undefined ? 'pass' : 'fail';
    const entry: HealthCheckEntry = {
      componentId: dependency.componentId(),
      componentType: 'datastore',
      status,
      metricValue: Math.round((performance.now() - started) * 100) / 100,
      metricUnit: 'ms',
      time: new Date().toISOString(),
      ...(output === undefined ? {} : { output }),
    };
    return {
      status,
      serviceId,
      description: `${serviceId} and its ${dependency.componentId()}`,
      checks: { [`${dependency.name}:responseTime`]: [entry] },
    };
  };
  const report = async (): Promise<HealthBody> => {
    if (last && Date.now() - last.at < ttlMs) return last.body;
    running ??= measure().finally(() => {
      running = undefined;
    });
    const body = await running;
    last = { at: Date.now(), body };
    return body;
  };
  return {
    report,
    check: async () => {
      const body = await report();
      const entry = Object.values(body.checks)[0]![0]!;
      return {
        status: body.status,
        observedValue: entry.metricValue,
        ...(entry.output ? { output: entry.output } : {}),
      };
    },
  };
}
