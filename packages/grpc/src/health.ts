import type { ChassisNode } from '@chassis/core';
import { type ServiceDefinition, status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { fromJSON } from '@grpc/proto-loader';

/**
 * The standard gRPC health service (`grpc.health.v1.Health/Check`), answered from the node's readiness:
 * what Kubernetes' gRPC probes, grpc_health_probe and load balancers ask. `SERVING` while the node is
 * ready (or only warns: an open breaker leaves it working), `NOT_SERVING` while it starts, drains or
 * fails a check. `Watch` (a stream) is not served.
 */

const definition = fromJSON(
  {
    nested: {
      grpc: {
        nested: {
          health: {
            nested: {
              v1: {
                nested: {
                  HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
                  HealthCheckResponse: {
                    fields: { status: { type: 'ServingStatus', id: 1 } },
                    nested: {
                      ServingStatus: { values: { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } },
                    },
                  },
                  Health: {
                    methods: {
                      Check: { requestType: 'HealthCheckRequest', responseType: 'HealthCheckResponse', comment: '' },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
  { keepCase: true, enums: String, defaults: true },
);

export const HEALTH_SERVICE = 'grpc.health.v1.Health';

/** The health service's definition and implementation for a server of `served` (its fully qualified name). */
export function healthService(
  node: ChassisNode,
  served: string,
): { definition: ServiceDefinition; implementation: UntypedServiceImplementation } {
  const check = async (name: string): Promise<'SERVING' | 'NOT_SERVING' | undefined> => {
    if (name !== '' && name !== served) return undefined;
    if (node.state !== 'running') return 'NOT_SERVING';
    const report = await node.readiness();
    return report.status === 'fail' ? 'NOT_SERVING' : 'SERVING';
  };
  return {
    definition: definition[HEALTH_SERVICE] as ServiceDefinition,
    implementation: {
      Check: (
        call: { request: { service: string } },
        callback: (error: { code: status; details: string } | null, reply?: { status: string }) => void,
      ) => {
        check(call.request.service).then(
          (answer) =>
            answer === undefined
              ? callback({ code: status.NOT_FOUND, details: `This server does not serve ${call.request.service}` })
              : callback(null, { status: answer }),
          () => callback(null, { status: 'NOT_SERVING' }),
        );
      },
    },
  };
}
