import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { action, ChassisError, createNode, defineService, handle } from '@chassis/core';
import { grpcClient, grpcServer } from '@chassis/grpc';
import { makeTestPki, type TestPki } from '@chassis/testing';
import { logVerbosity, setLogVerbosity } from '@grpc/grpc-js';
import { z } from 'zod';

/**
 * The server's life with its node's (listen at start, drain, shut) and TLS; the configuration errors of
 * both ends. The request paths themselves are in grpc.test.ts.
 */

// grpc-js logs a refused bind to stderr itself; the test checks the error the node's start gives.
setLogVerbosity(logVerbosity.NONE);

const PROTO = new URL('./users.proto', import.meta.url);
const SPEC_PROTO = new URL('./get-user-data.proto', import.meta.url);

const slow = action('drain.slow', {
  input: z.object({ ms: z.number().int().min(0).max(5000) }),
  output: z.object({ remaining_ms: z.number() }),
  idempotent: true,
});
const service = defineService({
  name: 'drain',
  actions: [
    handle(slow, async ({ ms }, ctx) => {
      await sleep(ms);
      return { remaining_ms: ctx.remainingMs() };
    }),
  ],
});
const slowMethods = {
  Slow: { request: z.object({ ms: z.number().int() }), response: z.object({ remaining_ms: z.number() }) },
};

describe('gRPC server lifecycle', () => {
  test('draining: a call in flight is answered, a call after the drain began is UNAVAILABLE', async () => {
    const server = grpcServer({ proto: PROTO, service: 'test.users.Users', port: 0, methods: { Slow: slow } });
    const node = createNode({ services: [service], extensions: [server], logLevel: 'silent', defaultMetrics: false });
    await node.start();
    const client = grpcClient({
      proto: PROTO,
      service: 'test.users.Users',
      address: server.address!,
      methods: slowMethods,
      node,
    });
    try {
      const inFlight = client.call('Slow', { ms: 400 }, { timeoutMs: 3000 });
      await sleep(100);
      const stopping = node.stop();
      await sleep(50);
      const late = await client.call('Slow', { ms: 0 }, { timeoutMs: 1000 }).catch((e: unknown) => e);
      const answered = await inFlight;
      await stopping;
      assert.ok(answered.remaining_ms > 0, 'the call in flight was answered');
      assert.ok(late instanceof ChassisError);
      assert.equal(late.code, 'UNAVAILABLE');
    } finally {
      client.close();
    }
  });

  test('a port already taken fails the node’s start with CONFIG', async () => {
    const first = grpcServer({ proto: PROTO, service: 'test.users.Users', port: 0, methods: { Slow: slow } });
    const holder = createNode({ services: [service], extensions: [first], logLevel: 'silent', defaultMetrics: false });
    await holder.start();
    try {
      const second = grpcServer({
        proto: PROTO,
        service: 'test.users.Users',
        port: first.port!,
        methods: { Slow: slow },
      });
      const node = createNode({ services: [service], extensions: [second], logLevel: 'silent', defaultMetrics: false });
      await assert.rejects(node.start(), (error: unknown) => error instanceof ChassisError && error.code === 'CONFIG');
    } finally {
      await holder.stop();
    }
  });
});

describe('gRPC over TLS', () => {
  let pki: TestPki;
  before(async () => {
    pki = await makeTestPki();
  });
  after(async () => {
    await pki?.remove();
  });

  test('a server with a certificate answers a client trusting its CA, and refuses a plain-text one', async () => {
    const server = grpcServer({
      proto: PROTO,
      service: 'test.users.Users',
      port: 0,
      host: 'localhost',
      methods: { Slow: slow },
      tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile },
    });
    const node = createNode({ services: [service], extensions: [server], logLevel: 'silent', defaultMetrics: false });
    await node.start();
    const secure = grpcClient({
      proto: PROTO,
      service: 'test.users.Users',
      address: `localhost:${server.port}`,
      methods: slowMethods,
      tls: { caFile: pki.caFile },
      node,
    });
    const plain = grpcClient({
      proto: PROTO,
      service: 'test.users.Users',
      address: `localhost:${server.port}`,
      methods: slowMethods,
      node,
      policies: { retry: false },
    });
    try {
      assert.ok((await secure.call('Slow', { ms: 0 })).remaining_ms > 0);
      const refused = await plain.call('Slow', { ms: 0 }, { timeoutMs: 1000 }).catch((e: unknown) => e);
      assert.ok(refused instanceof ChassisError);
      assert.equal(refused.code, 'UNAVAILABLE');
    } finally {
      secure.close();
      plain.close();
      await node.stop();
    }
  });

  test('a TLS file that does not exist is CONFIG naming it', () => {
    assert.throws(
      () =>
        grpcServer({
          proto: PROTO,
          service: 'test.users.Users',
          methods: {},
          tls: { certFile: '/nonexistent/server.pem', keyFile: pki.serverKeyFile },
        }),
      (error: unknown) =>
        error instanceof ChassisError && error.code === 'CONFIG' && /\/nonexistent\/server\.pem/.test(error.message),
    );
  });
});

describe('gRPC configuration', () => {
  test('a .proto without a package: its service is named alone (the News portal’s GetUserData)', () => {
    const client = grpcClient({
      proto: SPEC_PROTO,
      service: 'GetUserData',
      address: '127.0.0.1:1',
      methods: {
        GetUser: {
          request: z.object({ id: z.number().int() }),
          response: z.object({ id: z.number(), name: z.string(), email: z.string() }),
        },
      },
    });
    client.close();
  });

  test('an unknown service, an unknown method and a missing file are CONFIG errors saying what there is', () => {
    const isConfig = (pattern: RegExp) => (error: unknown) =>
      error instanceof ChassisError && error.code === 'CONFIG' && pattern.test(error.message);
    assert.throws(
      () => grpcServer({ proto: PROTO, service: 'Users', methods: {} }),
      isConfig(/no service Users; it has test\.users\.Users/),
    );
    assert.throws(
      () => grpcServer({ proto: PROTO, service: 'test.users.Users', methods: { Nope: slow } }),
      isConfig(/no unary method Nope; its unary methods: GetUser, Slow/),
    );
    assert.throws(
      () => grpcServer({ proto: new URL('./missing.proto', import.meta.url), service: 'X', methods: {} }),
      isConfig(/missing\.proto cannot be loaded/),
    );
  });

  test('metadata gRPC refuses is VALIDATION before anything is sent', async () => {
    const node = createNode({ services: [], logLevel: 'silent', defaultMetrics: false });
    const client = grpcClient({
      proto: PROTO,
      service: 'test.users.Users',
      address: '127.0.0.1:1',
      methods: slowMethods,
      node,
    });
    await assert.rejects(
      client.call('Slow', { ms: 0 }, { metadata: { 'Bad Key!': 'x' } }),
      (error: unknown) =>
        error instanceof ChassisError && error.code === 'VALIDATION' && /Bad Key!/.test(error.message),
    );
  });

  test('a client not bound to a node says how to bind it', async () => {
    const client = grpcClient({
      proto: PROTO,
      service: 'test.users.Users',
      address: '127.0.0.1:1',
      methods: slowMethods,
    });
    await assert.rejects(
      client.call('Slow', { ms: 0 }),
      (error: unknown) => error instanceof ChassisError && error.code === 'CONFIG' && /extensions/.test(error.message),
    );
  });
});
