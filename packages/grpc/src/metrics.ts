import type { ChassisNode } from '@chassis/core';
import { Histogram } from 'prom-client';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const SERVER_METRIC = 'chassis_grpc_server_duration_seconds';

type Labels = 'method' | 'status' | 'outcome';

/**
 * `chassis_grpc_server_duration_seconds{method, status, outcome}` on the node's registry: one histogram
 * however many gRPC servers share the node. `method` is the full method (`/users.v1.Users/GetUser`),
 * `status` the gRPC status name, `outcome` `ok` or the chassis error code, as on the other histograms.
 */
export function serverHistogram(node: ChassisNode): Histogram<Labels> {
  const registry = node.metrics.registry;
  const existing = registry.getSingleMetric(SERVER_METRIC);
  if (existing) return existing as Histogram<Labels>;
  return new Histogram({
    name: SERVER_METRIC,
    help: 'Time to answer a gRPC request, by full method, gRPC status and outcome',
    labelNames: ['method', 'status', 'outcome'] as const,
    buckets: BUCKETS,
    registers: [registry],
  });
}
