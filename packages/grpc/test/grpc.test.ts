import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  action,
  ChassisError,
  type ChassisNode,
  createNode,
  defineError,
  defineService,
  handle,
  InMemorySpanExporter,
  jwtVerifier,
  requireIdentity,
  signToken,
} from '@chassis/core';
import { fieldViolations, GrpcStatus, grpcClient, grpcMethod, grpcServer } from '@chassis/grpc';
import { freePort } from '@chassis/testing';
import {
  credentials,
  loadPackageDefinition,
  Metadata,
  makeGenericClientConstructor,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { fromJSON, loadSync } from '@grpc/proto-loader';
import { z } from 'zod';

/**
 * The gRPC edge and client against real sockets: one node serves the test service on an ephemeral port;
 * a plain `@grpc/grpc-js` client (no chassis code) checks the server's side of the protocol, and the
 * chassis client checks its own through the same server, and against a port nothing listens on.
 */

const PROTO = new URL('./users.proto', import.meta.url);
const SECRET = 'grpc-test-secret-at-least-32-characters';

const UserNotFound = defineError('USER_NOT_FOUND', { status: 404, retryable: false });

const getUser = action('users.getUser', {
  input: z.object({ userId: z.number().int().positive() }),
  output: z.object({ userId: z.number(), name: z.string(), email: z.string() }),
  idempotent: true,
});
const slow = action('users.slow', {
  input: z.object({ ms: z.number().int().min(0).max(10_000) }),
  output: z.object({ remaining_ms: z.number() }),
  idempotent: true,
});
const whoAmI = action('users.whoAmI', { input: z.object({}), output: z.object({ subject: z.string() }) });
const boom = action('users.boom', { input: z.object({}), output: z.object({}) });
const relay = action('users.relay', {
  input: z.object({ ms: z.number().int(), timeout_ms: z.number().int() }),
  output: z.object({ remaining_ms: z.number() }),
});

/** What the slow handler saw of its deadline, last time it ran. */
const seen = { remainingMs: -1, aborted: false, finished: false };

const users = defineService({
  name: 'users',
  actions: [
    handle(getUser, async ({ userId }) => {
      if (userId !== 1) throw UserNotFound(`No user ${userId}`, { userId });
      return { userId, name: 'Ada', email: 'ada@example.com' };
    }),
    handle(slow, async ({ ms }, ctx) => {
      seen.remainingMs = ctx.remainingMs();
      seen.aborted = false;
      seen.finished = false;
      try {
        await sleep(ms, undefined, { signal: ctx.signal });
        seen.finished = true;
      } catch {
        seen.aborted = ctx.signal.aborted;
      }
      return { remaining_ms: seen.remainingMs };
    }),
    handle(whoAmI, async (_input, ctx) => ({ subject: requireIdentity(ctx.user).subject })),
    handle(boom, async () => {
      throw new Error('connection to postgres://admin:hunter2@db failed');
    }),
    // A handler that calls gRPC itself: its own deadline must become the call's.
    handle(relay, async ({ ms, timeout_ms }) => {
      const reply = await client.call('Slow', { ms }, timeout_ms > 0 ? { timeoutMs: timeout_ms } : {});
      return { remaining_ms: reply.remaining_ms };
    }),
  ],
});

const server = grpcServer({
  proto: PROTO,
  service: 'test.users.Users',
  port: 0,
  methods: {
    GetUser: grpcMethod(getUser, {
      input: (request: { id: number }) => ({ userId: request.id }),
      output: (user) => ({ id: user.userId, name: user.name, email: user.email }),
    }),
    Slow: slow,
    WhoAmI: whoAmI,
    Boom: boom,
    Relay: relay,
  },
});

const userReply = z.object({ id: z.number(), name: z.string(), email: z.string() });
let address = '';
const client = grpcClient({
  proto: PROTO,
  service: 'test.users.Users',
  address: () => address,
  methods: {
    GetUser: { request: z.object({ id: z.number().int() }), response: userReply, idempotent: true },
    Slow: { request: z.object({ ms: z.number().int() }), response: z.object({ remaining_ms: z.number() }) },
    WhoAmI: { request: z.object({}), response: z.object({ subject: z.string() }) },
  },
});

type Unary = (
  request: object,
  metadata: Metadata,
  options: { deadline?: Date },
  callback: (error: ServiceError | null, reply?: Record<string, unknown>) => void,
) => void;
type RawClient = Record<string, Unary> & { close(): void };

/** A plain grpc-js client of the test service: what any other language's client would send. */
function rawClient(target: string): RawClient {
  const definition = loadSync(PROTO.pathname, { keepCase: true, defaults: true });
  const pkg = loadPackageDefinition(definition) as unknown as {
    test: {
      users: { Users: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => RawClient };
    };
  };
  return new pkg.test.users.Users(target, credentials.createInsecure());
}

function rawCall(
  raw: RawClient,
  method: string,
  request: object,
  options: { metadata?: Metadata; timeoutMs?: number } = {},
): Promise<{ reply?: Record<string, unknown>; error?: ServiceError }> {
  return new Promise((resolve) => {
    raw[method]!.call(
      raw,
      request,
      options.metadata ?? new Metadata(),
      options.timeoutMs === undefined ? {} : { deadline: new Date(Date.now() + options.timeoutMs) },
      (error, reply) => resolve(error ? { error } : { reply: reply! }),
    );
  });
}

function chassisDetails(error: ServiceError): { code: string; data?: { fields?: { path: string }[] } } {
  const carried = error.metadata.get('chassis-error-bin')[0];
  assert.ok(Buffer.isBuffer(carried), 'a chassis server sends its error in chassis-error-bin');
  return JSON.parse(carried.toString('utf8'));
}

describe('gRPC', () => {
  let node: ChassisNode;
  let raw: RawClient;
  const spans = new InMemorySpanExporter();

  before(async () => {
    node = createNode({
      services: [users],
      extensions: [server, client],
      identity: jwtVerifier({ secret: SECRET }),
      tracing: { exporter: spans, sampleRatio: 1 },
      logLevel: 'silent',
      defaultMetrics: false,
    });
    await node.start();
    assert.ok(server.port && server.port > 0);
    address = `127.0.0.1:${server.port}`;
    raw = rawClient(address);
  });

  after(async () => {
    raw?.close();
    await node?.stop();
  });

  test('a plain gRPC client gets the action’s answer, mapped to the proto’s message', async () => {
    const { reply, error } = await rawCall(raw, 'GetUser', { id: 1 });
    assert.equal(error, undefined);
    assert.deepEqual(reply, { id: 1, name: 'Ada', email: 'ada@example.com' });
  });

  test('a request that fails the contract is INVALID_ARGUMENT naming the field', async () => {
    // proto3 has no "missing": an absent id reads as 0, which the contract refuses.
    const { error } = await rawCall(raw, 'GetUser', {});
    assert.equal(error?.code, GrpcStatus.INVALID_ARGUMENT);
    assert.match(error.details, /userId/);
    const carried = chassisDetails(error);
    assert.equal(carried.code, 'VALIDATION');
    assert.deepEqual(
      carried.data?.fields?.map((f) => f.path),
      ['userId'],
    );
    // The same, in gRPC's own richer error model, for clients that are not chassis ones.
    const details = error.metadata.get('grpc-status-details-bin')[0];
    assert.ok(Buffer.isBuffer(details));
    assert.deepEqual(
      fieldViolations(details).map((v) => v.field),
      ['userId'],
    );
  });

  test('a domain not-found error is NOT_FOUND, and the chassis client gets the very error back', async () => {
    const { error } = await rawCall(raw, 'GetUser', { id: 42 });
    assert.equal(error?.code, GrpcStatus.NOT_FOUND);
    assert.match(error.details, /No user 42/);

    const failure = await client.call('GetUser', { id: 42 }).catch((e: unknown) => e);
    assert.ok(failure instanceof ChassisError);
    assert.equal(failure.code, 'USER_NOT_FOUND');
    assert.equal(failure.status, 404);
    assert.deepEqual(failure.data, { userId: 42 });
  });

  test('the chassis client: a typed call, its request checked before it is sent', async () => {
    assert.deepEqual(await client.call('GetUser', { id: 1 }), { id: 1, name: 'Ada', email: 'ada@example.com' });
    const refused = await client.call('GetUser', { id: 1.5 }).catch((e: unknown) => e);
    assert.ok(refused instanceof ChassisError);
    assert.equal(refused.code, 'VALIDATION');
  });

  test('an internal error is INTERNAL and does not leak its message', async () => {
    const metadata = new Metadata();
    metadata.set('x-request-id', 'req-boom-1');
    const { error } = await rawCall(raw, 'Boom', {}, { metadata });
    assert.equal(error?.code, GrpcStatus.INTERNAL);
    assert.doesNotMatch(error.details, /hunter2|postgres/);
    assert.match(error.details, /req-boom-1/);
    assert.doesNotMatch(error.metadata.get('chassis-error-bin')[0]!.toString(), /hunter2/);
  });

  test('a method of the proto that no action serves is UNIMPLEMENTED', async () => {
    const { error } = await rawCall(raw, 'NotServed', {});
    assert.equal(error?.code, GrpcStatus.UNIMPLEMENTED);
  });

  test('the gRPC deadline is the handler’s: it expires as DEADLINE_EXCEEDED and the handler is stopped', async () => {
    const startedAt = Date.now();
    const { error } = await rawCall(raw, 'Slow', { ms: 3000 }, { timeoutMs: 300 });
    assert.equal(error?.code, GrpcStatus.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - startedAt < 1500, 'the client did not wait for the handler');
    assert.ok(seen.remainingMs > 0 && seen.remainingMs <= 300, `the handler saw ${seen.remainingMs} ms left`);
    await waitFor(() => seen.aborted, 'the handler to be aborted at its deadline');
    assert.equal(seen.finished, false);
    // The server side counted it as a deadline too, not as an answer.
    await waitFor(
      async () =>
        /chassis_grpc_server_duration_seconds_count\{[^}]*Slow[^}]*DEADLINE_EXCEEDED[^}]*\} 1/.test(
          await node.metrics.text(),
        ),
      'the server metric of the expired request',
    );
  });

  test('the chassis client: its deadline is the gRPC deadline, and an expired one is TIMEOUT', async () => {
    const failure = await client.call('Slow', { ms: 3000 }, { timeoutMs: 250 }).catch((e: unknown) => e);
    assert.ok(failure instanceof ChassisError);
    assert.equal(failure.code, 'TIMEOUT');
    assert.ok(seen.remainingMs > 0 && seen.remainingMs <= 250, `the handler saw ${seen.remainingMs} ms left`);
  });

  test('a handler’s own deadline carries into the gRPC calls it makes', async () => {
    // The outer call gets 400 ms; the relay's call to Slow asks for nothing, so it inherits what is left.
    const failure = await node.call(relay, { ms: 3000, timeout_ms: 0 }, { timeoutMs: 400 }).catch((e: unknown) => e);
    assert.ok(failure instanceof ChassisError);
    assert.equal(failure.code, 'TIMEOUT');
    assert.ok(seen.remainingMs > 0 && seen.remainingMs <= 400, `the inner handler saw ${seen.remainingMs} ms left`);
    const answered = await node.call(relay, { ms: 0, timeout_ms: 0 }, { timeoutMs: 2000 });
    assert.ok(answered.remaining_ms > 1000 && answered.remaining_ms <= 2000);
  });

  test('the authorization metadata is the caller’s token, verified by the node', async () => {
    const token = await signToken(SECRET, { sub: 'ada' });
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    assert.deepEqual((await rawCall(raw, 'WhoAmI', {}, { metadata })).reply, { subject: 'ada' });

    assert.equal((await rawCall(raw, 'WhoAmI', {})).error?.code, GrpcStatus.UNAUTHENTICATED);
    const forged = new Metadata();
    forged.set('authorization', 'Bearer not.a.token');
    assert.equal((await rawCall(raw, 'WhoAmI', {}, { metadata: forged })).error?.code, GrpcStatus.UNAUTHENTICATED);

    // The chassis client sends the token it is given (inside a handler: the handler's caller's).
    assert.deepEqual(await client.call('WhoAmI', {}, { auth: token }), { subject: 'ada' });
  });

  test('the standard health service answers from the node’s readiness', async () => {
    const health = new (makeGenericClientConstructor(healthDefinition(), 'Health'))(
      address,
      credentials.createInsecure(),
    );
    const check = (service: string) =>
      new Promise<{ reply?: Record<string, unknown>; error?: ServiceError }>((resolve) =>
        health.Check!({ service }, (error: ServiceError | null, reply?: Record<string, unknown>) =>
          resolve(error ? { error } : { reply: reply! }),
        ),
      );
    try {
      assert.deepEqual((await check('')).reply, { status: 'SERVING' });
      assert.deepEqual((await check('test.users.Users')).reply, { status: 'SERVING' });
      assert.equal((await check('other.Service')).error?.code, GrpcStatus.NOT_FOUND);
    } finally {
      health.close();
    }
  });

  test('a trace continues from the client’s span to the server’s and into the action', async () => {
    spans.reset();
    await node.call(relay, { ms: 0, timeout_ms: 1000 });
    const finished = spans.getFinishedSpans();
    const grpcClientSpan = finished.find((s) => s.name === 'grpc test.users.Users/Slow' && s.kind === 2);
    const grpcServerSpan = finished.find((s) => s.name === 'grpc test.users.Users/Slow' && s.kind === 1);
    assert.ok(grpcClientSpan && grpcServerSpan, `spans: ${finished.map((s) => `${s.name}/${s.kind}`).join(', ')}`);
    assert.equal(grpcServerSpan.spanContext().traceId, grpcClientSpan.spanContext().traceId);
    assert.equal(grpcServerSpan.parentSpanContext?.spanId, grpcClientSpan.spanContext().spanId);
  });

  test('a server that is down: retried, then UNAVAILABLE as a ChassisError, not a crash', async () => {
    const port = await freePort();
    const down = grpcClient({
      proto: PROTO,
      service: 'test.users.Users',
      address: `127.0.0.1:${port}`,
      node,
      methods: {
        GetUser: { request: z.object({ id: z.number() }), response: userReply, idempotent: true },
        Slow: { request: z.object({ ms: z.number() }), response: z.object({ remaining_ms: z.number() }) },
      },
      policies: { retry: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 20 } },
    });
    try {
      const failure = await down.call('GetUser', { id: 1 }, { timeoutMs: 2000 }).catch((e: unknown) => e);
      assert.ok(failure instanceof ChassisError, String(failure));
      assert.equal(failure.code, 'UNAVAILABLE');
      assert.equal(failure.retryable, true);
      const metrics = await node.metrics.text();
      assert.match(metrics, /chassis_retries_total\{target="grpc:test.users.Users\/GetUser"\} 2/);
      assert.match(
        metrics,
        /chassis_rpc_client_duration_seconds_count\{target="grpc:test.users.Users\/GetUser",outcome="UNAVAILABLE"\} 1/,
      );
      // Not idempotent: tried once.
      const once = await down.call('Slow', { ms: 0 }).catch((e: unknown) => e);
      assert.ok(once instanceof ChassisError);
      assert.equal(once.code, 'UNAVAILABLE');
      assert.doesNotMatch(
        await node.metrics.text(),
        /chassis_retries_total\{target="grpc:test.users.Users\/Slow"\} [1-9]/,
      );
    } finally {
      down.close();
    }
  });
});

/** grpc.health.v1 as its .proto declares it, read here independently of the server's copy. */
function healthDefinition(): ServiceDefinition {
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
    { keepCase: true, enums: String },
  );
  return definition['grpc.health.v1.Health'] as ServiceDefinition;
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
