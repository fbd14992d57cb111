import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { type ActionContract, action, type EventContract, fieldErrors } from '../contracts.ts';
import { codecFor, decodeBody, Header } from '../envelope.ts';
import { ChassisError, toChassisError } from '../errors.ts';
import { requireRole } from '../identity.ts';
import {
  OPS_ACTION_NAME,
  OPS_SECRET_HEADER,
  type OpsAction,
  type OpsCredentials,
  opsAction,
  opsServiceName,
  opsWireName,
} from '../ops.ts';
import { type EventBinding, rpcQueueName, type WireMessage } from '../transports/transport.ts';
import { callFromOutside } from './calls.ts';
import { replayDelivery } from './events.ts';
import { liveness, readiness } from './health.ts';
import { nodeInfo } from './lifecycle.ts';
import type { ChassisNode } from './node.ts';
import { emitFromOutside } from './publish.ts';
import type { NodeRuntime } from './runtime.ts';

/**
 * The server side of the ops API (see `../ops.ts`): the core's actions — node, health, nodes, services,
 * actions, events, policies, backlogs, dead letters — and the extensions' (`NodeExtension.ops`), behind
 * one authorization, served on the transport under the node's own name and on the ops HTTP port.
 */

/** The ops actions of a node, by name. */
export type OpsTable = ReadonlyMap<string, OpsAction>;

const DEFAULT_ADMIN_ROLE = 'admin';
const json = codecFor('json');

const queueName = z
  .string()
  .regex(
    /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/,
    'a dead-letter queue: a subscription (`market.order_created`) or `rpc.<service>`',
  );
const serviceFilter = z.object({ service: z.string().optional() });
const traceId = z.string().regex(/^[0-9a-f]{32}$/, 'a trace id: 32 lower-case hex digits');
/** A W3C `traceparent`: version 00, a trace id and a parent span id (neither all zeros), the flags. */
const traceparent = z
  .string()
  .regex(
    /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/,
    'a W3C traceparent: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags, 01 = sampled>',
  );

/** A zod schema as JSON Schema (draft 2020-12), or a note where zod cannot say it (a transform, a custom check). */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  try {
    return z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  } catch (error) {
    return { description: `not expressible as JSON Schema: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/** The node's ops actions: the core's, then each extension's (a name taken twice is a configuration error). */
export function opsTable(rt: NodeRuntime, node: ChassisNode): OpsTable {
  const table = new Map<string, OpsAction>(Object.entries(coreActions(rt)));
  // `api` describes the whole table, so it comes last; a name an extension must not take either.
  table.set('api', opsAction({ description: '', input: z.object({}), run: () => null }));
  for (const extension of rt.extensions) {
    for (const [name, action] of Object.entries(extension.ops?.(node) ?? {})) {
      if (!OPS_ACTION_NAME.test(name)) {
        throw new ChassisError(
          'CONFIG',
          `Extension ${extension.name} adds ops action "${name}": use dot-separated lower-case words`,
        );
      }
      if (table.has(name)) {
        throw new ChassisError('CONFIG', `Extension ${extension.name} adds ops action "${name}", which exists already`);
      }
      table.set(name, action);
    }
  }
  table.set(
    'api',
    opsAction({
      description: 'The actions of this ops API, with their inputs as JSON Schema and their HTTP routes',
      input: z.object({}),
      run: () =>
        [...table].map(([name, action]) => ({
          name,
          description: action.description,
          mutates: action.mutates ?? false,
          http: `${action.mutates ? 'POST' : 'GET|POST'} /ops/${name.replaceAll('.', '/')}`,
          input: jsonSchemaOf(action.input, 'input'),
        })),
    }),
  );
  return table;
}

/**
 * Lets an operator in, or refuses with `UNAUTHENTICATED` (no credentials, a wrong secret, an invalid
 * token) or `FORBIDDEN` (a valid token without the admin role). Read-only actions need it too: a node's
 * services, queues and dead letters (payloads included) are not for anyone who can reach the broker.
 */
export async function authorizeOps(rt: NodeRuntime, credentials: OpsCredentials): Promise<void> {
  const secret = rt.options.opsSecret;
  if (credentials.secret !== undefined) {
    if (secret !== undefined && sameSecret(credentials.secret, secret)) return;
    throw new ChassisError(
      'UNAUTHENTICATED',
      secret === undefined
        ? `Node ${rt.id} has no ops secret (CHASSIS_OPS_SECRET): open its ops API with an admin token`
        : `The ops secret does not match node ${rt.id}'s CHASSIS_OPS_SECRET`,
    );
  }
  if (credentials.token !== undefined) {
    if (!rt.identity) {
      throw new ChassisError(
        'UNAUTHENTICATED',
        `Node ${rt.id} verifies no tokens (set CHASSIS_JWT_SECRET or CHASSIS_JWKS_URL): open its ops API with the ops secret`,
      );
    }
    requireRole(await rt.identity(credentials.token), rt.options.opsRole ?? DEFAULT_ADMIN_ROLE);
    return;
  }
  throw new ChassisError(
    'UNAUTHENTICATED',
    `The ops API needs a token with the "${rt.options.opsRole ?? DEFAULT_ADMIN_ROLE}" role or the ops secret (CHASSIS_OPS_SECRET)`,
  );
}

/** Compares in constant time, whatever the lengths (both are hashed first). */
function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** Authorizes, finds the action, checks its input and runs it: the output, or a `ChassisError`. */
export async function runOps(
  rt: NodeRuntime,
  table: OpsTable,
  name: string,
  input: unknown,
  credentials: OpsCredentials,
): Promise<unknown> {
  await authorizeOps(rt, credentials);
  const action = table.get(name);
  if (!action) {
    throw new ChassisError(
      'UNKNOWN_ACTION',
      `The ops API has no action "${name}"; it has: ${[...table.keys()].join(', ')}`,
      {
        data: { action: name, actions: [...table.keys()] },
      },
    );
  }
  const parsed = action.input.safeParse(input ?? {});
  if (!parsed.success) {
    const fields = fieldErrors(parsed.error);
    throw new ChassisError(
      'VALIDATION',
      `Invalid input for ops action ${name}: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`,
      { data: { action: name, fields } },
    );
  }
  try {
    return (await action.run(parsed.data)) ?? null;
  } catch (error) {
    const failure = toChassisError(error);
    if (failure.code === 'INTERNAL') rt.log.error({ err: error, action: name }, `ops action ${name} failed`);
    throw failure;
  }
}

/**
 * Serves the ops API on the transport under this node's own name, `exclusive` so that on RabbitMQ its
 * queue goes with the node. Requests are answered as action replies are (`status: error` and the
 * serialized error on failure), so `callOps` reads them as a call's.
 */
export function serveOps(rt: NodeRuntime, table: OpsTable) {
  const byWireName = new Map([...table.keys()].map((name) => [opsWireName(name), name]));
  return rt.transport.serve(
    opsServiceName(rt.id),
    async ({ action, message }): Promise<WireMessage> => {
      try {
        const credentials: OpsCredentials = {};
        if (message.headers[Header.auth] !== undefined) credentials.token = message.headers[Header.auth];
        if (message.headers[OPS_SECRET_HEADER] !== undefined) credentials.secret = message.headers[OPS_SECRET_HEADER];
        const output = await runOps(rt, table, byWireName.get(action) ?? action, decodeBody(message), credentials);
        return { headers: {}, body: json.encode(output) };
      } catch (error) {
        return { headers: { [Header.status]: 'error' }, body: json.encode(toChassisError(error).toJSON()) };
      }
    },
    { concurrency: 4, exclusive: true },
  );
}

// ---------------------------------------------------------------------------------------------------
// The core's actions

function coreActions(rt: NodeRuntime): Record<string, OpsAction> {
  return {
    node: opsAction({
      description: 'This node: id, host, pid, transport, state, ops port, services and what they serve and consume',
      input: z.object({}),
      run: () => ({
        ...nodeInfo(rt),
        state: rt.state,
        opsPort: rt.opsServer?.port ?? null,
        extensions: rt.extensions.map((extension) => extension.name),
      }),
    }),
    health: opsAction({
      description: 'Liveness and readiness, every check with its status and what it saw',
      input: z.object({}),
      run: async () => ({ nodeId: rt.id, live: await liveness(rt), ready: await readiness(rt) }),
    }),
    nodes: opsAction({
      description: 'The nodes this node has heard from (heartbeats), itself included',
      input: z.object({}),
      run: () => rt.registry.list(),
    }),
    services: opsAction({
      description: 'The services this node runs, with their actions and events and their contracts as JSON Schema',
      input: serviceFilter,
      run: ({ service }) => servicesOf(rt, service).map((s) => describeService(rt, s)),
    }),
    actions: opsAction({
      description: 'The actions this node serves, with input and output as JSON Schema',
      input: serviceFilter,
      run: ({ service }) => servicesOf(rt, service).flatMap((s) => describeService(rt, s).actions),
    }),
    events: opsAction({
      description: 'The events this node handles (each subscription) and emits, with payloads as JSON Schema',
      input: serviceFilter,
      run: ({ service }) =>
        servicesOf(rt, service).flatMap((s) => {
          const described = describeService(rt, s);
          return [...described.events, ...described.emits];
        }),
    }),
    policies: opsAction({
      description: 'Circuit breakers (state per target) and bulkheads (in flight, queued, limit)',
      input: z.object({}),
      run: () => ({ nodeId: rt.id, breakers: rt.policies.breakerStates(), bulkheads: rt.policies.bulkheadUse() }),
    }),
    backlogs: opsAction({
      description: "Messages waiting in each of this node's subscriptions, and their dead letters",
      input: serviceFilter,
      run: ({ service }) =>
        Promise.all(
          bindingsOf(rt, service).map(async (binding) => {
            const subscription = `${binding.service}.${binding.handler}`;
            const [backlog, deadLetters] = await Promise.all([
              rt.transport.backlog(binding).catch(() => null),
              rt.transport.countDeadLetters(subscription).catch(() => null),
            ]);
            return { subscription, event: binding.event, service: binding.service, backlog, deadLetters };
          }),
        ),
    }),
    traces: opsAction({
      description:
        'Recent traces this node recorded spans of (its in-memory span store), newest first: root span, start, duration, span count, services, whether any span failed',
      input: z.object({
        limit: z.coerce.number().int().min(1).max(500).default(50),
        service: z.string().optional(),
      }),
      run: ({ limit, service }) => rt.tracing.store?.traces({ limit, service }) ?? [],
    }),
    trace: opsAction({
      description:
        'The spans of one trace this node holds, by start time (none when it holds none: ask every node and merge)',
      input: z.object({ traceId }),
      run: ({ traceId }) => ({ traceId, spans: rt.tracing.store?.trace(traceId) ?? [] }),
    }),
    'dlq.list': opsAction({
      description: "Dead-letter queues of this node's subscriptions and RPC services, with how many letters each holds",
      input: serviceFilter,
      run: ({ service }) => {
        const queues = [
          ...bindingsOf(rt, service).map((b) => ({ queue: `${b.service}.${b.handler}`, kind: 'event' as const })),
          ...servicesOf(rt, service)
            .filter((s) => s.actions.size > 0)
            .map((s) => ({ queue: rpcQueueName(s.name), kind: 'rpc' as const })),
        ];
        return Promise.all(
          queues.map(async (queue) => ({ ...queue, count: await rt.transport.countDeadLetters(queue.queue) })),
        );
      },
    }),
    'dlq.show': opsAction({
      description: 'The dead letters of a queue, oldest first: id, reason, time, headers (no token) and payload',
      input: z.object({
        queue: queueName,
        id: z.string().optional(),
        limit: z.coerce.number().int().min(1).max(1000).default(20),
      }),
      run: async ({ queue, id, limit }) => {
        const [count, letters] = await Promise.all([
          rt.transport.countDeadLetters(queue),
          rt.transport.readDeadLetters(queue, id === undefined ? limit : 10_000),
        ]);
        const shown = id === undefined ? letters : letters.filter((l) => l.message.headers[Header.id] === id);
        if (id !== undefined && shown.length === 0) {
          throw new ChassisError('NOT_FOUND', `No dead letter ${id} in ${queue}`, { data: { queue, id } });
        }
        return { queue, count, letters: shown.map(describeLetter) };
      },
    }),
    'dlq.replay': opsAction({
      description:
        'Runs the handler of dead letters once more on this node (which must run the subscription); those it handles are deleted, the others stay with why they failed',
      mutates: true,
      input: z.object({
        queue: queueName,
        ids: z.array(z.string()).min(1).optional(),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
      }),
      run: ({ queue, ids, limit }) => replay(rt, queue, ids, limit),
    }),
    call: opsAction({
      description:
        "Calls an application action from this node, as node.call does (served here when this node runs it, else over the transport): for a tool that reaches the node only through its ops port; `token` is the caller's own token, which the action sees; `traceparent` (W3C) makes the call part of that trace (flags 01: recorded, so `trace` finds it)",
      mutates: true,
      input: z.object({
        action: z.string().regex(/^[^.]+\.[^.]+$/, 'an action name: <service>.<action>'),
        input: z.unknown().optional(),
        token: z.string().optional(),
        timeoutMs: z.coerce.number().int().min(1).max(600_000).optional(),
        traceparent: traceparent.optional(),
      }),
      run: ({ action: name, input, token, timeoutMs, traceparent }) =>
        callFromOutside(rt, actionContract(rt, name), input ?? {}, {
          ...(token === undefined ? {} : { auth: token }),
          ...(timeoutMs === undefined ? {} : { timeoutMs }),
          ...(traceparent === undefined ? {} : { traceparent }),
        }),
    }),
    emit: opsAction({
      description:
        'Publishes an application event from this node, its payload checked against the contract of a service here that handles or emits it',
      mutates: true,
      input: z.object({
        event: z.string().regex(/^[^.]+\.[^.]+$/, 'an event name: <source>.<event>'),
        payload: z.unknown().optional(),
        traceparent: traceparent.optional(),
      }),
      run: async ({ event: name, payload, traceparent }) => {
        await emitFromOutside(
          rt,
          eventContract(rt, name),
          payload ?? {},
          traceparent === undefined ? {} : { traceparent },
        );
        return { event: name, emitted: true };
      },
    }),
    'dlq.purge': opsAction({
      description: 'Deletes dead letters of a queue: those named by ids, or every one with all: true',
      mutates: true,
      input: z
        .object({ queue: queueName, ids: z.array(z.string()).min(1).optional(), all: z.literal(true).optional() })
        .refine((input) => (input.ids === undefined) !== (input.all === undefined), {
          message: 'give either ids (the letters to delete) or all: true (every letter of the queue)',
        }),
      run: async ({ queue, ids, all }) => {
        const removed = await rt.transport.removeDeadLetters(queue, all ? 'all' : (ids ?? []));
        rt.log.warn({ queue, removed, ids }, `ops: purged ${removed} dead letters of ${queue}`);
        return { queue, removed, remaining: await rt.transport.countDeadLetters(queue) };
      },
    }),
  };
}

/**
 * The contract of an action this node serves or calls, so its input is checked here; an action it does
 * not know goes out with a pass-through contract and is checked where it is served (or answered
 * `NO_SERVICE` when nothing serves it).
 */
function actionContract(rt: NodeRuntime, name: string): ActionContract {
  for (const service of rt.services) {
    for (const served of service.actions.values()) if (served.contract.name === name) return served.contract;
    for (const used of service.uses) if (used.kind === 'action' && used.name === name) return used;
  }
  return action(name, { input: z.unknown(), output: z.unknown() });
}

/** The contract of an event a service of this node handles or emits; an event it does not know is refused. */
function eventContract(rt: NodeRuntime, name: string): EventContract {
  for (const service of rt.services) {
    for (const handler of service.events) if (handler.contract.name === name) return handler.contract;
    for (const used of service.uses) if (used.kind === 'event' && used.name === name) return used;
  }
  throw new ChassisError(
    'NOT_FOUND',
    `No service of node ${rt.id} handles or emits the event ${name}, so its payload cannot be checked; \`chassis events\` lists the events`,
    { data: { event: name, nodeId: rt.id } },
  );
}

function servicesOf(rt: NodeRuntime, name: string | undefined) {
  return name === undefined ? rt.services : rt.services.filter((service) => service.name === name);
}

function bindingsOf(rt: NodeRuntime, service: string | undefined): EventBinding[] {
  return servicesOf(rt, service).flatMap((s) =>
    s.events.map((handler) => ({ event: handler.contract.name, service: s.name, handler: handler.name })),
  );
}

function describeService(rt: NodeRuntime, service: NodeRuntime['services'][number]) {
  return {
    name: service.name,
    version: service.version,
    description: service.description ?? null,
    nodeId: rt.id,
    actions: [...service.actions.values()].map(({ contract, policies }) => ({
      name: contract.name,
      service: service.name,
      idempotent: contract.idempotent,
      timeoutMs: contract.timeoutMs ?? null,
      description: contract.description ?? null,
      input: jsonSchemaOf(contract.input, 'input'),
      output: jsonSchemaOf(contract.output, 'output'),
      policies,
    })),
    events: service.events.map((handler) => ({
      name: handler.contract.name,
      role: 'handles' as const,
      service: service.name,
      subscription: `${service.name}.${handler.name}`,
      description: handler.contract.description ?? null,
      payload: jsonSchemaOf(handler.contract.payload, 'output'),
    })),
    emits: service.uses
      .filter((contract) => contract.kind === 'event')
      .map((contract) => ({
        name: contract.name,
        role: 'emits' as const,
        service: service.name,
        description: contract.description ?? null,
        payload: jsonSchemaOf(contract.payload, 'input'),
      })),
    calls: service.uses.filter((contract) => contract.kind === 'action').map((contract) => contract.name),
    schedules: service.schedules.map((schedule) => ({
      name: schedule.name,
      everyMs: schedule.everyMs,
      scope: schedule.options.scope ?? 'cluster',
    })),
  };
}

/** A dead letter as an operator reads it: the caller's token left out, the body decoded where it can be. */
function describeLetter(letter: Awaited<ReturnType<NodeRuntime['transport']['readDeadLetters']>>[number]) {
  const { [Header.auth]: _token, [OPS_SECRET_HEADER]: _secret, ...headers } = letter.message.headers;
  let payload: unknown = null;
  let bodyBase64: string | undefined;
  try {
    payload = decodeBody(letter.message);
  } catch {
    bodyBase64 = Buffer.from(letter.message.body).toString('base64');
  }
  return {
    id: letter.message.headers[Header.id] ?? null,
    queue: letter.queue,
    reason: letter.reason,
    at: new Date(letter.at).toISOString(),
    event: letter.message.headers[Header.type] ?? null,
    headers,
    payload,
    ...(bodyBase64 === undefined ? {} : { bodyBase64 }),
  };
}

/**
 * Replays dead letters of a subscription this node runs: each one's handler runs once more here, through
 * the whole pipeline (inbox, unit of work, metrics), and each one handled is deleted. Run here rather
 * than put back on the broker because a dead letter belongs to one subscription and the NATS events
 * stream can only re-deliver an event to every subscription of it; and because the operator learns
 * at once which letters still fail, and why.
 */
async function replay(rt: NodeRuntime, queue: string, ids: readonly string[] | undefined, limit: number) {
  const dot = queue.indexOf('.');
  const serviceName = queue.slice(0, dot);
  const service = rt.services.find((s) => s.name === serviceName);
  const handler = service?.events.find((h) => `${serviceName}.${h.name}` === queue);
  if (serviceName === 'rpc' && !handler) {
    throw new ChassisError(
      'VALIDATION',
      `${queue} holds requests that could not be read; nobody waits for their answers, so they cannot be replayed: show them, then purge them`,
    );
  }
  if (!service || !handler) {
    throw new ChassisError(
      'NOT_FOUND',
      `Node ${rt.id} does not run the subscription ${queue}; replay it on a node that runs service ${serviceName}`,
      { data: { queue, nodeId: rt.id } },
    );
  }
  const wanted = ids === undefined ? undefined : new Set(ids);
  const letters = (await rt.transport.readDeadLetters(queue, wanted ? 10_000 : limit)).filter(
    (letter) => !wanted || wanted.has(letter.message.headers[Header.id] ?? ''),
  );
  const handled: string[] = [];
  const failed: { id: string | null; reason: string }[] = [];
  for (const letter of letters) {
    const id = letter.message.headers[Header.id];
    if (id === undefined) {
      failed.push({ id: null, reason: 'it has no message id, so it could not be deleted once handled' });
      continue;
    }
    // The same id twice (a letter stored twice) is handled once: the inbox would skip the second anyway.
    if (handled.includes(id)) continue;
    const outcome = await replayDelivery(rt, service, handler, letter.message);
    if (outcome.handled) handled.push(id);
    else failed.push({ id, reason: outcome.reason });
  }
  // Deleted after the handlers ran: a crash in between replays them again, which the inbox makes harmless.
  if (handled.length > 0) await rt.transport.removeDeadLetters(queue, handled);
  rt.log.info(
    { queue, handled: handled.length, failed: failed.length },
    `ops: replayed ${letters.length} dead letters of ${queue}`,
  );
  return {
    queue,
    replayed: letters.length,
    handled,
    failed,
    remaining: await rt.transport.countDeadLetters(queue),
  };
}
