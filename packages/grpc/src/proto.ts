import { fileURLToPath } from 'node:url';
import { ChassisError } from '@chassis/core';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';

/** A `.proto` file: a path, or a `file:` URL (`new URL('./users.proto', import.meta.url)`). */
export type ProtoFile = string | URL;

/** One unary method of a loaded service. */
export type UnaryMethod = MethodDefinition<object, object>;

/**
 * How messages are read into JavaScript: field names as the `.proto` spells them, 64-bit integers and
 * enums as strings (a number would lose precision, a bare enum number says nothing), every field present
 * with its proto3 default, and the name of the set field of each `oneof`. Both ends read them the same
 * way, so a contract written for one fits the other.
 */
const LOADER_OPTIONS: Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

const loaded = new Map<string, PackageDefinition>();

function pathOf(proto: ProtoFile): string {
  return proto instanceof URL ? fileURLToPath(proto) : proto;
}

/**
 * The service `service` (fully qualified: `users.v1.Users`, or `GetUserData` for a `.proto` without a
 * package) of a `.proto`, with its unary methods. Read once per file. A missing file, a file that does
 * not parse, an unknown service or a streaming method is a `CONFIG` error naming what to fix.
 */
export function loadService(proto: ProtoFile, service: string): { methods: Map<string, UnaryMethod> } {
  const path = pathOf(proto);
  let definition = loaded.get(path);
  if (!definition) {
    try {
      definition = loadSync(path, LOADER_OPTIONS);
    } catch (error) {
      throw new ChassisError('CONFIG', `The proto file ${path} cannot be loaded: ${(error as Error).message}`, {
        cause: error,
        data: { proto: path },
      });
    }
    loaded.set(path, definition);
  }
  const found = definition[service];
  if (!found || 'format' in found) {
    const services = Object.entries(definition)
      .filter(([, value]) => !('format' in value))
      .map(([name]) => name);
    throw new ChassisError(
      'CONFIG',
      `The proto file ${path} has no service ${service}; it has ${services.join(', ') || 'none'} (name it with its package, e.g. pkg.Service)`,
      { data: { proto: path, service, services } },
    );
  }
  const methods = new Map<string, UnaryMethod>();
  for (const [name, method] of Object.entries(found as ServiceDefinition)) {
    if (method.requestStream || method.responseStream) continue;
    methods.set(name, method as UnaryMethod);
  }
  return { methods };
}

/** The method `name` of a loaded service; `CONFIG` naming the unary methods there are when it is not one of them. */
export function methodOf(
  service: string,
  methods: ReadonlyMap<string, UnaryMethod>,
  name: string,
  proto: ProtoFile,
): UnaryMethod {
  const method = methods.get(name);
  if (!method) {
    throw new ChassisError(
      'CONFIG',
      `Service ${service} of ${pathOf(proto)} has no unary method ${name}; its unary methods: ${[...methods.keys()].join(', ') || 'none'} (streaming methods are not supported)`,
      { data: { service, method: name } },
    );
  }
  return method;
}
