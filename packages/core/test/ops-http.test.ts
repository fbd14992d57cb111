import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  action,
  type ChassisNode,
  callOps,
  callOpsHttp,
  createNode,
  defineService,
  event,
  handle,
  isChassisError,
  jwtVerifier,
  MemoryBroker,
  memoryTransport,
  on,
  signToken,
} from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import { z } from 'zod';

/**
 * The ops API on the ops HTTP port — what a node on the memory transport (the embedded default) offers,
 * having no broker to be reached through: the same actions and authentication as on the transport.
 */
const OPS_SECRET = 'http-ops-secret-0123456789';
const JWT_SECRET = 'http-jwt-secret-0123456789abcdefgh';

const greet = action('desk.greet', {
  input: z.object({ name: z.string() }),
  output: z.object({ text: z.string() }),
});
const noted = event('desk.noted', z.object({ note: z.string() }));

describe('ops API on the ops HTTP port', () => {
  let node: ChassisNode;
  let base: string;
  let fixed = false;
  const handled: string[] = [];

  before(async () => {
    node = createNode({
      logLevel: 'silent',
      transport: memoryTransport({ broker: new MemoryBroker() }),
      opsPort: 0,
      opsHost: '127.0.0.1',
      opsSecret: OPS_SECRET,
      identity: jwtVerifier({ secret: JWT_SECRET }),
      services: [
        defineService({
          name: 'desk',
          actions: [
            handle(greet, ({ name }, ctx) => ({ text: `hello ${name}${ctx.user ? ` from ${ctx.user.subject}` : ''}` })),
          ],
          events: [
            on(
              noted,
              ({ note }) => {
                if (!fixed) throw new Error('not yet');
                handled.push(note);
              },
              { maxDeliveries: 1 },
            ),
          ],
        }),
      ],
    });
    await node.start();
    base = `http://127.0.0.1:${node.opsPort}`;
  });
  after(() => node.stop());

  const asOperator = { 'x-chassis-ops-secret': OPS_SECRET };
  async function get(path: string, headers: Record<string, string> = asOperator) {
    const response = await fetch(`${base}${path}`, { headers });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }
  async function post(path: string, body: unknown, headers: Record<string, string> = asOperator) {
    const response = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  it('refuses without credentials, with a wrong secret, and a token without the admin role', async () => {
    const anonymous = await get('/ops/services', {});
    assert.equal(anonymous.status, 401);
    assert.equal((anonymous.body.error as { code: string }).code, 'UNAUTHENTICATED');
    assert.equal((await get('/ops/services', { 'x-chassis-ops-secret': 'wrong-secret-xxxxxxxx' })).status, 401);
    assert.equal((await post('/ops/dlq/purge', { queue: 'desk.noted', all: true }, {})).status, 401);
    const customer = await signToken(JWT_SECRET, { sub: 'alice', roles: ['customer'] });
    const forbidden = await get('/ops/services', { authorization: `Bearer ${customer}` });
    assert.equal(forbidden.status, 403);
    assert.equal((forbidden.body.error as { code: string }).code, 'FORBIDDEN');
    const admin = await signToken(JWT_SECRET, { sub: 'ops', roles: ['admin'] });
    assert.equal((await get('/ops/services', { authorization: `Bearer ${admin}` })).status, 200);
    // The health probes stay open: a kubelet has no token.
    assert.equal((await fetch(`${base}/health/ready`)).status, 200);
  });

  it('refuses a name that cannot be an ops action before sending anything, on both paths', async () => {
    const transport = memoryTransport({ broker: new MemoryBroker() });
    for (const call of [
      () => callOpsHttp('http://127.0.0.1:1', 'Bad Name', {}, { secret: OPS_SECRET }),
      () => callOps(transport, 'any-node', 'dlq/replay', {}, { secret: OPS_SECRET }),
    ]) {
      await assert.rejects(call(), (error: unknown) => isChassisError(error) && error.code === 'VALIDATION');
    }
  });

  it('lists its API, node, services with JSON Schema', async () => {
    const api = await get('/ops');
    assert.equal(api.status, 200);
    const names = (api.body as unknown as { name: string; http: string }[]).map((a) => a.name);
    for (const name of ['node', 'health', 'services', 'dlq.replay', 'dlq.purge']) assert.ok(names.includes(name), name);
    const info = await get('/ops/node');
    assert.equal((info.body as unknown as { nodeId: string }).nodeId, node.id);
    const services = await get('/ops/services?service=desk');
    const [desk] = services.body as unknown as { actions: { input: { properties: object } }[] }[];
    assert.deepEqual(Object.keys(desk!.actions[0]!.input.properties), ['name']);
  });

  it('replays and purges dead letters by POST, never by GET, with errors as JSON', async () => {
    await node.emit(noted, { note: 'one' });
    await node.emit(noted, { note: 'two' });
    await waitUntil(async () => (await node.transport.countDeadLetters('desk.noted')) === 2);
    const shown = await get('/ops/dlq/show?queue=desk.noted&limit=1');
    assert.equal(shown.status, 200);
    const letters = (shown.body as unknown as { letters: { id: string; payload: { note: string } }[] }).letters;
    assert.equal(letters.length, 1);

    const viaGet = await get('/ops/dlq/replay?queue=desk.noted');
    assert.equal(viaGet.status, 405);
    const badJson = await post('/ops/dlq/replay', '{not json');
    assert.equal(badJson.status, 400);
    assert.equal((badJson.body.error as { code: string }).code, 'BAD_MESSAGE');
    const invalid = await post('/ops/dlq/purge', { queue: 'desk.noted' });
    assert.equal(invalid.status, 400);
    assert.equal((invalid.body.error as { code: string }).code, 'VALIDATION');

    fixed = true;
    const replayed = await post('/ops/dlq/replay', { queue: 'desk.noted', ids: [letters[0]!.id] });
    assert.equal(replayed.status, 200);
    assert.deepEqual((replayed.body as { handled: string[] }).handled, [letters[0]!.id]);
    assert.deepEqual(handled, [letters[0]!.payload.note]);
    const purged = await post('/ops/dlq/purge', { queue: 'desk.noted', all: true });
    assert.deepEqual(purged.body, { queue: 'desk.noted', removed: 1, remaining: 0 });
    assert.equal(handled.length, 1);
  });

  it('call and emit: an application action and event from the node, for a tool that reaches only its ops port', async () => {
    assert.deepEqual(
      await callOpsHttp(base, 'call', { action: 'desk.greet', input: { name: 'ada' } }, { secret: OPS_SECRET }),
      {
        text: 'hello ada',
      },
    );
    // The caller's own token rides along: the action sees its user, as a call through the gateway would.
    const customer = await signToken(JWT_SECRET, { sub: 'alice', roles: ['customer'] });
    assert.deepEqual(
      await callOpsHttp(
        base,
        'call',
        { action: 'desk.greet', input: { name: 'bo' }, token: customer },
        { secret: OPS_SECRET },
      ),
      { text: 'hello bo from alice' },
    );
    await assert.rejects(
      callOpsHttp(base, 'call', { action: 'desk.greet', input: { name: 3 } }, { secret: OPS_SECRET }),
      (error: unknown) => isChassisError(error, 'VALIDATION') && /name/.test(error.message),
    );
    await assert.rejects(
      callOpsHttp(base, 'call', { action: 'desk.nope', input: {} }, { secret: OPS_SECRET }),
      (error: unknown) => isChassisError(error, 'UNKNOWN_ACTION'),
    );
    // The caller's token does not open the ops API: it is not the operator's.
    await assert.rejects(
      callOpsHttp(base, 'call', { action: 'desk.greet', input: { name: 'x' } }, { token: customer }),
      (error: unknown) => isChassisError(error, 'FORBIDDEN'),
    );
    assert.equal((await get('/ops/call?action=desk.greet')).status, 405, 'POST only');

    await assert.rejects(
      callOpsHttp(base, 'emit', { event: 'desk.noted', payload: { note: 5 } }, { secret: OPS_SECRET }),
      (error: unknown) => isChassisError(error, 'VALIDATION'),
    );
    await assert.rejects(
      callOpsHttp(base, 'emit', { event: 'desk.unheard', payload: {} }, { secret: OPS_SECRET }),
      (error: unknown) => isChassisError(error, 'NOT_FOUND'),
    );
    fixed = true;
    const before = handled.length;
    assert.deepEqual(
      await callOpsHttp(base, 'emit', { event: 'desk.noted', payload: { note: 'emitted' } }, { secret: OPS_SECRET }),
      {
        event: 'desk.noted',
        emitted: true,
      },
    );
    await waitUntil(() => handled.length === before + 1);
    assert.equal(handled.at(-1), 'emitted');
  });

  it('callOpsHttp calls an action and turns an error body into a ChassisError', async () => {
    const listed = (await callOpsHttp(base, 'dlq.list', {}, { secret: OPS_SECRET })) as { queue: string }[];
    assert.deepEqual(
      listed.map((q) => q.queue),
      ['desk.noted', 'rpc.desk'],
    );
    await assert.rejects(callOpsHttp(base, 'dlq.list'), (error: unknown) => {
      assert.ok(isChassisError(error, 'UNAUTHENTICATED'));
      assert.equal(error.status, 401);
      return true;
    });
    await assert.rejects(callOpsHttp('http://127.0.0.1:1', 'node', {}, { secret: OPS_SECRET }), (error: unknown) =>
      isChassisError(error, 'UNAVAILABLE'),
    );
  });
});
