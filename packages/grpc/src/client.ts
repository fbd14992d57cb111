import {
  type CallPolicies,
  ChassisError,
  type ChassisNode,
  currentContext,
  fieldErrors,
  type NodeExtension,
  noSpan,
  SpanKind,
  Tracing,
} from '@chassis/core';
import { Client, Metadata, type ServiceError } from '@grpc/grpc-js';
import type { z } from 'zod';
import { loadService, methodOf, type ProtoFile, type UnaryMethod } from './proto.ts';
import { chassisErrorOf } from './status.ts';
import { clientCredentials, type GrpcClientTls } from './tls.ts';

/**
 * One method a client calls: the schemas of its request and response as the proto reads them (the
 * request is checked before it is sent, the response when it comes), and whether it may be retried.
 */
export interface GrpcClientMethod<Req extends z.ZodType = z.ZodType, Res extends z.ZodType = z.ZodType> {
  request: Req;
  response: Res;
  /** Safe to send twice (a read): only idempotent methods are retried. Default false. */
  idempotent?: boolean;
  /** This method's time when the call says nothing and no deadline is inherited; default the client's. */
  timeoutMs?: number;
  /** Retry, breaker and bulkhead of this method, over the client's and the node's. */
  policies?: CallPolicies;
}

export type GrpcClientMethods = Record<string, GrpcClientMethod>;

export interface GrpcClientOptions<M extends GrpcClientMethods> {
  proto: ProtoFile;
  /** Fully qualified: `users.v1.Users`, or `GetUserData` for a `.proto` without a package. */
  service: string;
  /**
   * `host:port`, e.g. `127.0.0.1:50051`, or any target grpc-js takes (`dns:///users:50051`); a function
   * is asked at the first call (a server on a port picked at start, say).
   */
  address: string | (() => string);
  methods: M;
  /** `true`: TLS trusting the system's CAs; files: the CA to trust and, for mutual TLS, this client's pair. Plain text without it. */
  tls?: GrpcClientTls | boolean;
  /** Time a call gets when neither it nor an inherited deadline says otherwise. Default the node's call timeout, 5 s. */
  timeoutMs?: number;
  /** Retry, breaker and bulkhead of every method, over the node's defaults. */
  policies?: CallPolicies;
  /** The node whose policies, metrics and tracer the calls use; without it, the node the client is an extension of. */
  node?: ChassisNode;
}

export interface GrpcCallOptions {
  /** Milliseconds the call may take in all, retries included; never past the handler's deadline. */
  timeoutMs?: number;
  /** Absolute epoch ms; never past the handler's deadline. */
  deadline?: number;
  /** The token to call with in place of the handler's caller's (sent as `authorization: Bearer …`). */
  auth?: string;
  /** More metadata to send (ASCII values). */
  metadata?: Record<string, string>;
}

/**
 * A typed client of one gRPC service. Made with the node's extensions (or given `node`), it calls with
 * the handler's context when called inside one: the handler's remaining deadline is the gRPC deadline,
 * its caller's token goes as `authorization`, its correlation id as `x-request-id` and its span's
 * context as `traceparent`.
 */
export interface GrpcClient<M extends GrpcClientMethods> extends NodeExtension {
  call<K extends keyof M & string>(
    method: K,
    request: z.input<M[K]['request']>,
    options?: GrpcCallOptions,
  ): Promise<z.output<M[K]['response']>>;
  /** Closes the channel; the node's stop does it for a client among its extensions. */
  close(): void;
}

const DEFAULT_TIMEOUT_MS = 5000;

/**
 * `grpcClient({ proto, service: 'GetUserData', address, methods: { GetUser: { request, response, idempotent: true } } })`.
 *
 * Every call goes through the node's policies as an action call does — its bulkhead, its breaker (per
 * method, target `grpc:<service>/<method>`), retries of idempotent methods on retryable errors within
 * the deadline — and is measured in `chassis_rpc_client_duration_seconds{target}` with a client span.
 * A failure is a `ChassisError`: the server's own error when it is a chassis server, else the code of
 * the gRPC status (`UNAVAILABLE` for a server that is down, `TIMEOUT` for `DEADLINE_EXCEEDED`).
 */
export function grpcClient<M extends GrpcClientMethods>(options: GrpcClientOptions<M>): GrpcClient<M> {
  const { methods: protoMethods } = loadService(options.proto, options.service);
  const definitions = new Map<string, UnaryMethod>();
  for (const name of Object.keys(options.methods)) {
    definitions.set(name, methodOf(options.service, protoMethods, name, options.proto));
  }
  const credentials = clientCredentials(options.tls);
  let node = options.node;
  let channel: Client | undefined;
  const resolved = new Map<string, Required<CallPolicies>>();

  const channelOf = (): Client => {
    channel ??= new Client(typeof options.address === 'function' ? options.address() : options.address, credentials);
    return channel;
  };

  const policiesOf = (bound: ChassisNode, name: string, spec: GrpcClientMethod): Required<CallPolicies> => {
    let policies = resolved.get(name);
    if (!policies) {
      policies = bound.policies.resolveCall(options.policies, spec.policies);
      resolved.set(name, policies);
    }
    return policies;
  };

  async function call<K extends keyof M & string>(
    method: K,
    request: z.input<M[K]['request']>,
    callOptions: GrpcCallOptions = {},
  ): Promise<z.output<M[K]['response']>> {
    const bound = node;
    if (!bound) {
      throw new ChassisError(
        'CONFIG',
        `The gRPC client of ${options.service} has no node: add it to the node's extensions, or pass node`,
      );
    }
    const spec = options.methods[method];
    const definition = definitions.get(method);
    if (!spec || !definition) {
      throw new ChassisError('CONFIG', `The gRPC client of ${options.service} does not declare method ${method}`);
    }
    const target = `grpc:${options.service}/${method}`;
    const ctx = currentContext();
    const now = Date.now();
    const deadline = Math.min(
      callOptions.deadline ?? Number.POSITIVE_INFINITY,
      now + (callOptions.timeoutMs ?? spec.timeoutMs ?? options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      ctx?.deadline ?? Number.POSITIVE_INFINITY,
    );
    const tracing = bound.tracing;
    const parent = ctx?.span ?? noSpan;
    const span =
      tracing.unrecorded(parent) ??
      tracing.record(`grpc ${options.service}/${method}`, SpanKind.CLIENT, parent, {
        'rpc.system': 'grpc',
        'rpc.service': options.service,
        'rpc.method': method,
        'server.address': typeof options.address === 'function' ? options.address() : options.address,
      });
    const started = performance.now();
    let failure: unknown;
    try {
      const parsed = spec.request.safeParse(request);
      if (!parsed.success) {
        const fields = fieldErrors(parsed.error);
        throw new ChassisError(
          'VALIDATION',
          `Invalid request to ${target}: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`,
          { data: { fields } },
        );
      }
      if (deadline <= now) {
        throw new ChassisError(
          'TIMEOUT',
          ctx
            ? `The deadline of the request being handled has passed; ${target} was not called`
            : `The deadline passed before ${target} was called`,
          { data: { service: options.service, action: method, timeoutMs: 0 } },
        );
      }
      const metadata = outgoingMetadata(callOptions.metadata, target);
      const auth = callOptions.auth ?? ctx?.auth;
      if (auth) metadata.set('authorization', `Bearer ${auth}`);
      if (ctx) metadata.set('x-request-id', ctx.correlationId);
      const carried: Record<string, string> = {};
      tracing.inject(span, carried);
      for (const [key, value] of Object.entries(carried)) metadata.set(key, value);
      const reply = await bound.policies.call<unknown, unknown>({
        target,
        idempotent: spec.idempotent === true,
        deadline,
        input: parsed.data,
        policies: policiesOf(bound, method, spec),
        attempt: () => unary(channelOf(), definition, parsed.data, metadata, deadline, target),
      });
      const checked = spec.response.safeParse(reply);
      if (!checked.success) {
        const fields = fieldErrors(checked.error);
        throw new ChassisError(
          'BAD_MESSAGE',
          `The reply of ${target} does not fit its schema: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`,
          { status: 502, data: { fields } },
        );
      }
      return checked.data as z.output<M[K]['response']>;
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      const code = (failure as { code?: unknown } | undefined)?.code;
      bound.metrics.observeClient(
        target,
        failure === undefined ? 'ok' : typeof code === 'string' ? code : 'INTERNAL',
        (performance.now() - started) / 1000,
      );
      Tracing.end(span, failure);
    }
  }

  return {
    name: `grpc-client:${options.service}`,
    call,
    close() {
      channel?.close();
      channel = undefined;
    },
    async start(started) {
      node ??= started;
    },
    async stop() {
      channel?.close();
      channel = undefined;
    },
  };
}

/** The call's own metadata; a key or value gRPC refuses is `VALIDATION`, before anything is sent. */
function outgoingMetadata(given: Record<string, string> | undefined, target: string): Metadata {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(given ?? {})) {
    try {
      metadata.set(key, value);
    } catch (error) {
      throw new ChassisError('VALIDATION', `Metadata ${key} cannot be sent to ${target}: ${(error as Error).message}`, {
        data: { fields: [{ path: `metadata.${key}`, message: (error as Error).message, code: 'invalid_metadata' }] },
      });
    }
  }
  return metadata;
}

/** One attempt: one unary request with the call's deadline. */
function unary(
  channel: Client,
  definition: UnaryMethod,
  request: unknown,
  metadata: Metadata,
  deadline: number,
  target: string,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    channel.makeUnaryRequest<unknown, unknown>(
      definition.path,
      definition.requestSerialize as (value: unknown) => Buffer,
      definition.responseDeserialize,
      request,
      metadata,
      { deadline: Number.isFinite(deadline) ? new Date(deadline) : Number.POSITIVE_INFINITY },
      (error: ServiceError | null, response?: unknown) => {
        if (error) reject(chassisErrorOf(error, target));
        else resolve(response);
      },
    );
  });
}
