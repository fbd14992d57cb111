import type { ChassisError, FieldError } from '@chassis/core';
import protobuf from 'protobufjs';

/**
 * gRPC's richer error model (`google.rpc.Status` in the `grpc-status-details-bin` trailer), for clients
 * that are not chassis ones: every error carries a `google.rpc.ErrorInfo` (reason: the chassis code,
 * domain `chassis`), and a validation error a `google.rpc.BadRequest` listing each field that failed —
 * what grpcurl, Google's client libraries and most gRPC tooling know how to show.
 */

export const STATUS_DETAILS_METADATA = 'grpc-status-details-bin';

const root = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: { Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } } },
        },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
                details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: 'string', id: 1 },
                domain: { type: 'string', id: 2 },
              },
            },
            BadRequest: {
              fields: { field_violations: { rule: 'repeated', type: 'FieldViolation', id: 1 } },
              nested: {
                FieldViolation: {
                  fields: { field: { type: 'string', id: 1 }, description: { type: 'string', id: 2 } },
                },
              },
            },
          },
        },
      },
    },
  },
});

const Status = root.lookupType('google.rpc.Status');
const ErrorInfo = root.lookupType('google.rpc.ErrorInfo');
const BadRequest = root.lookupType('google.rpc.BadRequest');

function any(type: protobuf.Type, value: object): { type_url: string; value: Uint8Array } {
  return { type_url: `type.googleapis.com/${type.fullName.slice(1)}`, value: type.encode(type.create(value)).finish() };
}

function fieldsOf(error: ChassisError): FieldError[] {
  const fields = (error.data as { fields?: unknown } | undefined)?.fields;
  if (!Array.isArray(fields)) return [];
  return fields.filter(
    (f): f is FieldError =>
      typeof f === 'object' && f !== null && typeof f.path === 'string' && typeof f.message === 'string',
  );
}

/** The `google.rpc.Status` of an error answer, encoded for the `grpc-status-details-bin` trailer. */
export function statusDetails(error: ChassisError, code: number, message: string): Buffer {
  const details = [any(ErrorInfo, { reason: error.code, domain: 'chassis' })];
  const fields = fieldsOf(error);
  if (fields.length > 0) {
    details.push(any(BadRequest, { field_violations: fields.map((f) => ({ field: f.path, description: f.message })) }));
  }
  return Buffer.from(Status.encode(Status.create({ code, message, details })).finish());
}

/** The violations of a `google.rpc.Status` trailer: for tests and for clients reading another server's. */
export function fieldViolations(trailer: Buffer): { field: string; description: string }[] {
  const status = Status.toObject(Status.decode(trailer)) as { details?: { type_url: string; value: Uint8Array }[] };
  const out: { field: string; description: string }[] = [];
  for (const detail of status.details ?? []) {
    if (detail.type_url !== 'type.googleapis.com/google.rpc.BadRequest') continue;
    const request = BadRequest.toObject(BadRequest.decode(detail.value)) as {
      field_violations?: { field: string; description: string }[];
    };
    out.push(...(request.field_violations ?? []));
  }
  return out;
}
