import { randomUUID } from 'node:crypto';
import {
  type ActionContract,
  ChassisError,
  type ChassisNode,
  fieldErrors,
  type InputOf,
  type NodeExtension,
  type OutputOf,
  type Span,
  SpanKind,
  Tracing,
  toChassisError,
} from '@chassis/core';
import {
  type Metadata,
  Server,
  type ServerErrorResponse,
  type ServerUnaryCall,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { healthService } from './health.ts';
import { serverHistogram } from './metrics.ts';
import { loadService, methodOf, type ProtoFile, type UnaryMethod } from './proto.ts';
import { errorMetadata, grpcStatusOf, isInternal, statusName } from './status.ts';
import { type GrpcServerTls, serverCredentials } from './tls.ts';

/** A message as `@grpc/proto-loader` reads it: fields by their `.proto` names. */
export type GrpcMessage = Record<string, unknown>;

/**
 * One method served by one action. `input` builds the action's input from the request (default: the
 * request as it is), `output` the response from the action's output (default: the output as it is).
 * The input is checked against the action's contract either way: a request that fails it is
 * `INVALID_ARGUMENT` with the fields named.
 */
export interface GrpcMethod {
  readonly action: ActionContract;
  readonly input: ((request: GrpcMessage) => unknown) | undefined;
  readonly output: ((output: unknown) => unknown) | undefined;
}

/**
 * A method served by `action`, with the mapping between the proto's messages and the action's contract:
 * `grpcMethod(getUser, { input: (r: { id: number }) => ({ userId: r.id }), output: (u) => ({ id: u.userId, name: u.name }) })`.
 */
export function grpcMethod<C extends ActionContract, Req extends object = GrpcMessage, Res = OutputOf<C>>(
  action: C,
  mapping: { input?: (request: Req) => InputOf<C>; output?: (output: OutputOf<C>) => Res } = {},
): GrpcMethod {
  return {
    action,
    input: mapping.input as ((request: GrpcMessage) => unknown) | undefined,
    output: mapping.output as ((output: unknown) => unknown) | undefined,
  };
}

export interface GrpcServerOptions {
  /** The `.proto` that declares the service. */
  proto: ProtoFile;
  /** Fully qualified: `users.v1.Users`, or `GetUserData` for a `.proto` without a package. */
  service: string;
  /**
   * Each served method, by its name in the `.proto`: an action whose contract fits the messages as they
   * are, or `grpcMethod(action, { input, output })`. Methods of the `.proto` not listed answer `UNIMPLEMENTED`.
   */
  methods: Record<string, ActionContract | GrpcMethod>;
  /** Default 50051; 0 picks a free port (read it from `port` once the node has started). */
  port?: number;
  /** Default `127.0.0.1`; `0.0.0.0` in a container. */
  host?: string;
  /** Plain text without it. */
  tls?: GrpcServerTls;
  /**
   * The deadline of a request that brings none (default 5 s), and the longest one a client may ask for
   * (default 30 s), as at the HTTP gateway.
   */
  deadline?: { defaultTimeoutMs?: number; maxTimeoutMs?: number };
  /**
   * Also serve the standard health service, `grpc.health.v1.Health/Check`, from the node's readiness
   * (for Kubernetes' gRPC probes and load balancers). Default true.
   */
  health?: boolean;
  /** The gRPC status of an error, where the default mapping does not fit (e.g. a duplicate as `ALREADY_EXISTS`). */
  statusOf?: (error: ChassisError) => number | undefined;
}

/**
 * A gRPC server as a node extension: it binds as the node starts (a taken port fails the start), answers
 * `UNAVAILABLE` until the node runs, stops taking calls when the node drains and lets the ones in flight
 * finish, and is shut when the node stops.
 */
export interface GrpcServer extends NodeExtension {
  /** The bound port, once the node has started. */
  readonly port: number | undefined;
  /** `host:port`, once the node has started. */
  readonly address: string | undefined;
}

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const BEARER = /^Bearer\s+(.+)$/i;

interface Served {
  readonly path: string;
  readonly method: GrpcMethod;
}

/**
 * Serves actions over gRPC from a `.proto`:
 * `createNode({ services, extensions: [grpcServer({ proto, service: 'GetUserData', methods: { GetUser: grpcMethod(getUser) } })] })`.
 *
 * Each request is called as the HTTP gateway calls an action: its gRPC deadline is the call's deadline
 * (the handler's `ctx.deadline`), its `authorization` metadata (`Bearer <token>`) the caller's token,
 * its `x-request-id` the correlation id, its `traceparent` the trace it continues. Errors answer with the
 * gRPC status of their code; an internal one says only that it failed, and is logged.
 */
export function grpcServer(options: GrpcServerOptions): GrpcServer {
  const { methods: protoMethods } = loadService(options.proto, options.service);
  const served = new Map<string, Served>();
  for (const [name, spec] of Object.entries(options.methods)) {
    const definition: UnaryMethod = methodOf(options.service, protoMethods, name, options.proto);
    const method: GrpcMethod = 'kind' in spec ? { action: spec, input: undefined, output: undefined } : spec;
    served.set(name, { path: definition.path, method });
  }
  const credentials = serverCredentials(options.tls);
  const host = options.host ?? '127.0.0.1';
  const limits = {
    defaultTimeoutMs: options.deadline?.defaultTimeoutMs ?? 5000,
    maxTimeoutMs: options.deadline?.maxTimeoutMs ?? 30_000,
  };
  let server: Server | undefined;
  let port: number | undefined;

  return {
    name: `grpc-server:${options.service}`,
    get port() {
      return port;
    },
    get address() {
      return port === undefined ? undefined : `${host}:${port}`;
    },
    async start(node) {
      const implementation: UntypedServiceImplementation = {};
      for (const [name, entry] of served) implementation[name] = unaryHandler(node, entry, limits, options.statusOf);
      const definition = Object.fromEntries([...served.keys()].map((name) => [name, protoMethods.get(name)!]));
      server = new Server();
      server.addService(definition, implementation);
      if (options.health !== false) {
        const health = healthService(node, options.service);
        server.addService(health.definition, health.implementation);
      }
      port = await new Promise<number>((resolve, reject) => {
        server!.bindAsync(`${host}:${options.port ?? 50051}`, credentials, (error, bound) => {
          if (error) {
            server?.forceShutdown();
            server = undefined;
            reject(
              new ChassisError(
                'CONFIG',
                `gRPC server ${options.service} cannot listen on ${host}:${options.port ?? 50051}: ${error.message}`,
                { cause: error },
              ),
            );
          } else resolve(bound);
        });
      });
      node.log.info({ service: options.service, address: `${host}:${port}` }, 'gRPC server listening');
    },
    async draining() {
      const draining = server;
      if (!draining) return;
      // New calls are refused from here; the ones in flight finish (the node bounds the wait).
      await new Promise<void>((resolve) => draining.tryShutdown(() => resolve()));
    },
    async stop() {
      server?.forceShutdown();
      server = undefined;
    },
  };
}

type Limits = { defaultTimeoutMs: number; maxTimeoutMs: number };

function unaryHandler(
  node: ChassisNode,
  entry: Served,
  limits: Limits,
  statusOf: GrpcServerOptions['statusOf'],
): (call: ServerUnaryCall<GrpcMessage, unknown>, callback: sendUnaryData<unknown>) => void {
  const histogram = serverHistogram(node);
  return (call, callback) => {
    const started = performance.now();
    const headers = traceHeaders(call.metadata);
    const tracing = node.tracing;
    const parent = tracing.extract(headers);
    const span =
      tracing.unrecorded(parent) ??
      tracing.record(`grpc ${entry.path.slice(1)}`, SpanKind.SERVER, parent, {
        'rpc.system': 'grpc',
        'rpc.service': entry.path.slice(1, entry.path.lastIndexOf('/')),
        'rpc.method': entry.path.slice(entry.path.lastIndexOf('/') + 1),
      });
    serve(node, entry, call, limits, span, tracing).then(
      (response) => {
        histogram.observe({ method: entry.path, status: 'OK', outcome: 'ok' }, (performance.now() - started) / 1000);
        span.setAttribute('rpc.grpc.status_code', 0);
        Tracing.end(span);
        callback(null, response);
      },
      (thrown: unknown) => {
        const error = toChassisError(thrown);
        const code = statusOf?.(error) ?? grpcStatusOf(error);
        if (isInternal(error)) node.log.error({ err: thrown, method: entry.path }, 'gRPC request failed inside');
        histogram.observe(
          { method: entry.path, status: statusName(code), outcome: error.code },
          (performance.now() - started) / 1000,
        );
        span.setAttribute('rpc.grpc.status_code', code);
        Tracing.end(span, error);
        const message = isInternal(error)
          ? `The request failed inside the system; quote request id ${requestIdOf(call.metadata) ?? '(none)'} when reporting it`
          : error.message;
        const answer: ServerErrorResponse = {
          name: 'ChassisError',
          code,
          message,
          metadata: errorMetadata(error, code, message),
        };
        callback(answer);
      },
    );
  };
}

async function serve(
  node: ChassisNode,
  { method }: Served,
  call: ServerUnaryCall<GrpcMessage, unknown>,
  limits: Limits,
  span: Span,
  tracing: Tracing,
): Promise<unknown> {
  if (node.state !== 'running') {
    throw new ChassisError(
      'UNAVAILABLE',
      `This node is ${node.state}, not serving; try another instance or again shortly`,
    );
  }
  const deadline = deadlineOf(call, limits);
  const raw = method.input ? method.input(call.request) : call.request;
  const parsed = method.action.input.safeParse(raw);
  if (!parsed.success) {
    const fields = fieldErrors(parsed.error);
    throw new ChassisError(
      'VALIDATION',
      `Invalid request: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`,
      { data: { fields } },
    );
  }
  const carried: Record<string, string> = {};
  tracing.inject(span, carried);
  const token = tokenOf(call.metadata);
  const output = await node.call(method.action, parsed.data, {
    deadline,
    correlationId: requestIdOf(call.metadata) ?? randomUUID(),
    ...(token === undefined ? {} : { auth: token }),
    ...(carried.traceparent === undefined ? {} : { traceparent: carried.traceparent }),
    ...(carried.tracestate === undefined ? {} : { tracestate: carried.tracestate }),
  });
  return method.output ? method.output(output) : output;
}

/** The request's deadline on this node's clock (grpc-js counts the client's `grpc-timeout` from arrival), capped. */
function deadlineOf(call: ServerUnaryCall<GrpcMessage, unknown>, limits: Limits): number {
  const now = Date.now();
  const given = call.getDeadline();
  const at = given instanceof Date ? given.getTime() : given;
  const cap = now + limits.maxTimeoutMs;
  if (!Number.isFinite(at)) return now + Math.min(limits.defaultTimeoutMs, limits.maxTimeoutMs);
  if (at <= now) throw new ChassisError('TIMEOUT', 'The request’s deadline had passed when it arrived');
  return Math.min(at, cap);
}

function first(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === 'string' ? value : undefined;
}

function tokenOf(metadata: Metadata): string | undefined {
  const header = first(metadata, 'authorization');
  if (header === undefined) return undefined;
  const match = BEARER.exec(header.trim());
  return match ? match[1] : header.trim() || undefined;
}

function requestIdOf(metadata: Metadata): string | undefined {
  const id = first(metadata, 'x-request-id');
  return id !== undefined && REQUEST_ID.test(id) ? id : undefined;
}

function traceHeaders(metadata: Metadata): Record<string, string> {
  const headers: Record<string, string> = {};
  const traceparent = first(metadata, 'traceparent');
  const tracestate = first(metadata, 'tracestate');
  if (traceparent !== undefined) headers.traceparent = traceparent;
  if (tracestate !== undefined) headers.tracestate = tracestate;
  return headers;
}
