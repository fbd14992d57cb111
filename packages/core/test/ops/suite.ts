import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  action,
  type ChassisError,
  callOps,
  defineService,
  event,
  handle,
  isChassisError,
  jwtVerifier,
  on,
  signToken,
} from '@chassis/core';
import { type TransportTarget, useCluster, waitUntil } from '@chassis/testing';
import { z } from 'zod';

/**
 * The ops API through the transport, the same on every transport: a node is addressed by its id, lists
 * what it runs with JSON Schema, and lists, shows, replays and purges its dead letters — for an admin
 * token or the ops secret only.
 */

export const OPS_SECRET = 'ops-secret-for-tests-0123456789';
export const JWT_SECRET = 'jwt-secret-for-tests-0123456789abcdef';
const asOperator = { secret: OPS_SECRET };

/** Rejects with the ChassisError `code`. */
async function refused(call: Promise<unknown>, code: string): Promise<ChassisError> {
  const error = await call.then(
    () => assert.fail(`expected ${code}, got an answer`),
    (caught: unknown) => caught,
  );
  assert.ok(isChassisError(error), `expected a ChassisError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  return error;
}

export function opsSuite(target: TransportTarget): void {
  describe(`ops API on the transport: ${target.name}`, { skip: target.skip }, () => {
    const cluster = useCluster(target, {
      heartbeatIntervalMs: 200,
      redelivery: { initialDelayMs: 20, maxDelayMs: 100 },
      opsSecret: OPS_SECRET,
      identity: jwtVerifier({ secret: JWT_SECRET }),
    });

    function contracts() {
      const service = `ops-${cluster.suffix}`;
      return {
        service,
        greet: action(`${service}.greet`, {
          input: z.object({ name: z.string().min(1), times: z.number().int().positive().default(1) }),
          output: z.object({ text: z.string() }),
          idempotent: true,
          description: 'Says hello',
        }),
        noted: event(`${service}.noted`, z.object({ note: z.string() })),
      };
    }

    it('addresses one node by its id and lists its services, actions and events with JSON Schema', async () => {
      const c = contracts();
      const greeter = defineService({
        name: c.service,
        uses: [c.noted],
        actions: [handle(c.greet, ({ name, times }) => ({ text: `hello ${name}`.repeat(times) }))],
        events: [on(c.noted, () => undefined)],
      });
      const a = await cluster.startNode([greeter]);
      const b = await cluster.startNode([]);
      const client = await cluster.transport();

      const info = (await callOps(client, b.id, 'node', {}, asOperator)) as { nodeId: string; state: string };
      assert.equal(info.nodeId, b.id);
      assert.equal(info.state, 'running');

      const [service] = (await callOps(client, a.id, 'services', {}, asOperator)) as {
        name: string;
        nodeId: string;
        actions: {
          name: string;
          idempotent: boolean;
          input: Record<string, unknown>;
          output: Record<string, unknown>;
        }[];
        events: { name: string; subscription: string; payload: Record<string, unknown> }[];
      }[];
      assert.equal(service?.name, c.service);
      assert.equal(service.nodeId, a.id);
      const [greet] = service.actions;
      assert.equal(greet?.name, c.greet.name);
      assert.equal(greet.idempotent, true);
      assert.deepEqual(greet.input.required, ['name']);
      assert.deepEqual((greet.input.properties as Record<string, { type: string }>).name?.type, 'string');
      assert.deepEqual((greet.output.properties as Record<string, { type: string }>).text?.type, 'string');
      assert.equal(service.events[0]?.subscription, `${c.service}.noted`);
      assert.deepEqual(service.events[0]?.payload.required, ['note']);

      const actions = (await callOps(client, a.id, 'actions', { service: c.service }, asOperator)) as {
        name: string;
      }[];
      assert.deepEqual(
        actions.map((x) => x.name),
        [c.greet.name],
      );
      const events = (await callOps(client, a.id, 'events', {}, asOperator)) as { name: string; role: string }[];
      assert.deepEqual(
        events.map((x) => `${x.role} ${x.name}`),
        [`handles ${c.noted.name}`, `emits ${c.noted.name}`],
      );

      const health = (await callOps(client, a.id, 'health', {}, asOperator)) as {
        ready: { status: string; checks: Record<string, unknown> };
      };
      assert.equal(health.ready.status, 'pass');
      assert.ok('transport:connection' in health.ready.checks);

      // The node knows its peers through heartbeats.
      await waitUntil(async () => ((await callOps(client, b.id, 'nodes', {}, asOperator)) as unknown[]).length >= 2, {
        what: 'both nodes listed',
      });

      const missing = await callOps(client, 'nobody-here', 'node', {}, { ...asOperator, timeoutMs: 1000 }).catch(
        (error: unknown) => error,
      );
      // NO_SERVICE where the broker can tell nobody listens, else the call times out.
      assert.ok(isChassisError(missing) && ['NO_SERVICE', 'TIMEOUT'].includes(missing.code), String(missing));
      await refused(callOps(client, a.id, 'no.such', {}, asOperator), 'UNKNOWN_ACTION');
      await refused(callOps(client, a.id, 'dlq.show', { queue: 'bad queue!' }, asOperator), 'VALIDATION');
    });

    it('refuses callers without credentials, with a wrong secret or with a token lacking the admin role', async () => {
      const node = await cluster.startNode([]);
      const client = await cluster.transport();
      const queue = `ops-${cluster.suffix}.noted`;
      await refused(callOps(client, node.id, 'services'), 'UNAUTHENTICATED');
      await refused(callOps(client, node.id, 'dlq.purge', { queue, all: true }), 'UNAUTHENTICATED');
      await refused(callOps(client, node.id, 'services', {}, { secret: 'not-the-secret' }), 'UNAUTHENTICATED');
      await refused(callOps(client, node.id, 'services', {}, { token: 'not-a-jwt' }), 'UNAUTHENTICATED');
      const customer = await signToken(JWT_SECRET, { sub: 'alice', roles: ['customer'] });
      const forbidden = await refused(
        callOps(client, node.id, 'dlq.purge', { queue, all: true }, { token: customer }),
        'FORBIDDEN',
      );
      assert.deepEqual((forbidden.data as { required: string[] }).required, ['admin']);
      const admin = await signToken(JWT_SECRET, { sub: 'ops', roles: ['admin'] });
      const purged = (await callOps(client, node.id, 'dlq.purge', { queue, all: true }, { token: admin })) as {
        removed: number;
      };
      assert.equal(purged.removed, 0);
    });

    it('lists a dead letter a failing handler made, shows it, replays it (handled) and purges another', async () => {
      const c = contracts();
      let fixed = false;
      const handled: string[] = [];
      const notes = defineService({
        name: c.service,
        events: [
          on(
            c.noted,
            ({ note }) => {
              if (!fixed) throw new Error(`cannot take ${note} yet`);
              handled.push(note);
            },
            { maxDeliveries: 2 },
          ),
        ],
      });
      const node = await cluster.startNode([notes]);
      const client = await cluster.transport();
      const queue = `${c.service}.noted`;
      await node.emit(c.noted, { note: 'first' });
      await node.emit(c.noted, { note: 'second' });

      type Listed = { queue: string; kind: string; count: number }[];
      await waitUntil(
        async () =>
          ((await callOps(client, node.id, 'dlq.list', {}, asOperator)) as Listed).find((q) => q.queue === queue)
            ?.count === 2,
        { what: 'two dead letters listed' },
      );
      const backlogs = (await callOps(client, node.id, 'backlogs', {}, asOperator)) as {
        subscription: string;
        deadLetters: number;
      }[];
      assert.equal(backlogs.find((b) => b.subscription === queue)?.deadLetters, 2);

      type Shown = {
        count: number;
        letters: { id: string; reason: string; payload: { note: string }; headers: object }[];
      };
      const shown = (await callOps(client, node.id, 'dlq.show', { queue }, asOperator)) as Shown;
      assert.equal(shown.count, 2);
      const byNote = new Map(shown.letters.map((letter) => [letter.payload.note, letter]));
      const first = byNote.get('first')!;
      const second = byNote.get('second')!;
      assert.match(first.reason, /cannot take first yet/);
      const one = (await callOps(client, node.id, 'dlq.show', { queue, id: first.id }, asOperator)) as Shown;
      assert.deepEqual(
        one.letters.map((l) => l.payload.note),
        ['first'],
      );

      // Still failing: a replay leaves the letter where it is and says why.
      const failedAgain = (await callOps(client, node.id, 'dlq.replay', { queue, ids: [first.id] }, asOperator)) as {
        handled: string[];
        failed: { id: string; reason: string }[];
        remaining: number;
      };
      assert.deepEqual(failedAgain.handled, []);
      assert.match(failedAgain.failed[0]?.reason ?? '', /cannot take first yet/);
      assert.equal(failedAgain.remaining, 2);

      fixed = true;
      const replayed = (await callOps(client, node.id, 'dlq.replay', { queue, ids: [first.id] }, asOperator)) as {
        handled: string[];
        remaining: number;
      };
      assert.deepEqual(replayed.handled, [first.id]);
      assert.deepEqual(handled, ['first']);
      assert.equal(replayed.remaining, 1);

      await refused(callOps(client, node.id, 'dlq.purge', { queue }, asOperator), 'VALIDATION');
      const purged = (await callOps(client, node.id, 'dlq.purge', { queue, ids: [second.id] }, asOperator)) as {
        removed: number;
        remaining: number;
      };
      assert.deepEqual([purged.removed, purged.remaining], [1, 0]);
      assert.deepEqual(handled, ['first'], 'a purged letter is not handled');

      // Only a node that runs the subscription can replay it.
      const other = await cluster.startNode([]);
      await refused(callOps(client, other.id, 'dlq.replay', { queue }, asOperator), 'NOT_FOUND');
    });

    it('shows breakers and bulkheads', async () => {
      const c = contracts();
      const node = await cluster.startNode([
        defineService({ name: c.service, actions: [handle(c.greet, ({ name }) => ({ text: name }))] }),
      ]);
      const caller = await cluster.startNode([], { localCalls: false });
      await caller.call(c.greet, { name: 'x' });
      const client = await cluster.transport();
      const policies = (await callOps(client, caller.id, 'policies', {}, asOperator)) as {
        breakers: { target: string; state: string }[];
        bulkheads: { target: string; maxConcurrent: number }[];
      };
      assert.deepEqual(policies.breakers, [{ target: c.greet.name, state: 'closed' }]);
      assert.equal(policies.bulkheads[0]?.target, c.greet.name);
      assert.ok(node.id);
    });
  });
}
