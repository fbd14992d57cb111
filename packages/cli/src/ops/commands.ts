import { isChassisError } from '@chassis/core';
import { CliError, type Output } from '../output.ts';
import { type ConnectFlags, type Connection, withConnection } from './connection.ts';
import { answered, describeError, printJson, printTable, readJsonArgument, truncate } from './format.ts';

/**
 * The commands that talk to a running system through its ops API (docs/ops.md). Each node answers for
 * itself, so the listing commands ask every node and merge what they say.
 */

export interface ListFlags extends ConnectFlags {
  json?: boolean;
  service?: string;
}

/** Asks every node; `skipUnknown` passes over nodes without the action (the data kit's, on a node without it). */
async function everyNode<T>(
  connection: Connection,
  action: string,
  input: unknown,
  options: { skipUnknown?: boolean; service?: string | undefined } = {},
): Promise<{ nodeId: string; answer: T }[]> {
  const ids = await answered(() => connection.nodeIds(options.service));
  const answers = await Promise.all(
    ids.map(async (nodeId) => {
      try {
        return { nodeId, answer: (await connection.ops(nodeId, action, input)) as T };
      } catch (error) {
        if (options.skipUnknown && isChassisError(error) && error.code === 'UNKNOWN_ACTION') return undefined;
        throw describeError(error);
      }
    }),
  );
  return answers.filter((a): a is { nodeId: string; answer: T } => a !== undefined);
}

function serviceInput(flags: ListFlags): Record<string, string> {
  return flags.service === undefined ? {} : { service: flags.service };
}

export async function nodes(flags: ListFlags, output: Output): Promise<void> {
  await withConnection(flags, async (connection) => {
    const list = (await answered(() => connection.nodes())).filter(
      (n) => flags.service === undefined || n.services.some((s) => s.name === flags.service),
    );
    if (flags.json) return printJson(output, list);
    printTable(
      output,
      ['node', 'host', 'pid', 'transport', 'status', 'services', 'last seen'],
      list.map((n) => [
        n.nodeId,
        n.host,
        n.pid,
        n.transport,
        n.status,
        n.services.map((s) => s.name).join(','),
        `${Math.max(0, Math.round((Date.now() - n.lastSeen) / 1000))}s ago`,
      ]),
    );
  });
}

interface ServiceInfo {
  name: string;
  version: string;
  nodeId: string;
  actions: unknown[];
  events: unknown[];
  emits: unknown[];
  calls: string[];
}

export async function services(flags: ListFlags, output: Output): Promise<void> {
  await withConnection(flags, async (connection) => {
    const answers = await everyNode<ServiceInfo[]>(connection, 'services', serviceInput(flags), {
      service: flags.service,
    });
    const all = answers.flatMap((a) => a.answer);
    if (flags.json) return printJson(output, all);
    const merged = mergeBy(all, (s) => `${s.name}@${s.version}`);
    printTable(
      output,
      ['service', 'version', 'actions', 'handles', 'emits', 'nodes'],
      merged.map(({ item, nodeIds }) => [
        item.name,
        item.version,
        item.actions.length,
        item.events.length,
        item.emits.length,
        nodeIds.join(','),
      ]),
    );
  });
}

interface ActionInfo {
  name: string;
  service: string;
  idempotent: boolean;
  timeoutMs: number | null;
  description: string | null;
}

export async function actions(flags: ListFlags, output: Output): Promise<void> {
  await withConnection(flags, async (connection) => {
    const all = (
      await everyNode<ActionInfo[]>(connection, 'actions', serviceInput(flags), { service: flags.service })
    ).flatMap((a) => a.answer.map((item) => ({ ...item, nodeId: a.nodeId })));
    if (flags.json) return printJson(output, all);
    printTable(
      output,
      ['action', 'idempotent', 'timeout', 'nodes', 'description'],
      mergeBy(all, (a) => a.name).map(({ item, nodeIds }) => [
        item.name,
        item.idempotent ? 'yes' : 'no',
        item.timeoutMs === null ? null : `${item.timeoutMs}ms`,
        nodeIds.join(','),
        truncate(item.description ?? '', 60),
      ]),
    );
  });
}

interface EventInfo {
  name: string;
  role: 'handles' | 'emits';
  service: string;
  subscription?: string;
  description: string | null;
}

export async function events(flags: ListFlags, output: Output): Promise<void> {
  await withConnection(flags, async (connection) => {
    const all = (
      await everyNode<EventInfo[]>(connection, 'events', serviceInput(flags), { service: flags.service })
    ).flatMap((a) => a.answer.map((item) => ({ ...item, nodeId: a.nodeId })));
    if (flags.json) return printJson(output, all);
    printTable(
      output,
      ['event', 'role', 'service', 'subscription', 'nodes'],
      mergeBy(all, (e) => `${e.name}|${e.role}|${e.service}`).map(({ item, nodeIds }) => [
        item.name,
        item.role,
        item.service,
        item.subscription ?? null,
        nodeIds.join(','),
      ]),
    );
  });
}

/** Items that several nodes report alike (a service's replicas), once each, with the nodes that said so. */
function mergeBy<T extends { nodeId?: string }>(items: T[], key: (item: T) => string) {
  const merged = new Map<string, { item: T; nodeIds: string[] }>();
  for (const item of items) {
    const k = key(item);
    const entry = merged.get(k) ?? { item, nodeIds: [] };
    if (item.nodeId !== undefined && !entry.nodeIds.includes(item.nodeId)) entry.nodeIds.push(item.nodeId);
    merged.set(k, entry);
  }
  return [...merged.values()].sort((a, b) => key(a.item).localeCompare(key(b.item)));
}

export interface CallCommandFlags extends ConnectFlags {
  timeout?: number;
  node?: string;
}

export async function call(
  actionName: string,
  inputText: string | undefined,
  flags: CallCommandFlags,
  output: Output,
): Promise<void> {
  const input = readJsonArgument(inputText, 'input');
  await withConnection(flags, async (connection) => {
    const token = flags.token ?? process.env.CHASSIS_TOKEN;
    const result = await answered(() =>
      connection.call(actionName, input, {
        ...(token ? { token } : {}),
        ...(flags.timeout === undefined ? {} : { timeoutMs: flags.timeout }),
        ...(flags.node === undefined ? {} : { nodeId: flags.node }),
      }),
    ).catch((error: CliError) => {
      throw new CliError(
        /UNKNOWN_ACTION|NO_SERVICE/.test(error.message) && !/chassis actions/.test(error.message)
          ? `${error.message} (\`chassis actions\` lists the actions)`
          : error.message,
      );
    });
    printJson(output, result ?? null);
  });
}

export async function emit(
  eventName: string,
  payloadText: string | undefined,
  flags: ConnectFlags,
  output: Output,
): Promise<void> {
  const payload = readJsonArgument(payloadText, 'payload');
  await withConnection(flags, async (connection) => {
    // A node that handles or emits the event checks the payload against its contract and publishes it.
    if (!/^[^.\s]+\.[^.\s]+$/.test(eventName)) {
      throw new CliError(`"${eventName}" is not an event name: <source>.<event>, e.g. accounts.opened`, {
        usage: true,
      });
    }
    const all = await answered(() => connection.nodeIds());
    const source = await connection.nodeIds(eventName.split('.')[0]).catch((): string[] => []);
    // The event's source service knows its contract; any node that handles it does too.
    const ids = [...source, ...all.filter((id) => !source.includes(id))];
    let failure: unknown;
    for (const nodeId of ids) {
      try {
        await connection.ops(nodeId, 'emit', { event: eventName, payload });
        output.say(`emitted ${eventName} (from node ${nodeId})`);
        output.out(JSON.stringify({ event: eventName, emitted: true, nodeId }));
        return;
      } catch (error) {
        if (isChassisError(error) && error.code === 'VALIDATION') throw describeError(error);
        // A node that does not know the event, or (on a shared broker) is not this system's: the next one.
        failure ??= isChassisError(error) && error.code === 'NOT_FOUND' ? undefined : error;
      }
    }
    if (failure !== undefined) throw describeError(failure);
    throw new CliError(
      `No running service handles or emits the event ${eventName}: \`chassis events\` lists the events`,
    );
  });
}

interface HealthReport {
  nodeId: string;
  live: { status: string };
  ready: { status: string; checks?: Record<string, { status: string; output?: string }[]> };
}

/** Exit code 1 when a node is not ready, so a script can wait on it. */
export async function health(flags: ListFlags, output: Output): Promise<number> {
  return withConnection(flags, async (connection) => {
    const reports = (await everyNode<HealthReport>(connection, 'health', {}, { service: flags.service })).map(
      (a) => a.answer,
    );
    if (flags.json) printJson(output, reports);
    else
      printTable(
        output,
        ['node', 'live', 'ready', 'failing checks'],
        reports.map((r) => [
          r.nodeId,
          r.live.status,
          r.ready.status,
          Object.entries(r.ready.checks ?? {})
            .filter(([, results]) => results.some((c) => c.status !== 'pass'))
            .map(([name]) => name)
            .join(',') || null,
        ]),
      );
    return reports.every((r) => r.ready.status === 'pass') ? 0 : 1;
  });
}

interface OutboxInfo {
  service: string;
  pending: number;
  oldestAgeMs: number | null;
  parked: number;
}

export async function outbox(flags: ListFlags, output: Output): Promise<void> {
  await withConnection(flags, async (connection) => {
    const all = (
      await everyNode<OutboxInfo[]>(connection, 'outbox', serviceInput(flags), {
        skipUnknown: true,
        service: flags.service,
      })
    ).flatMap((a) => a.answer.map((item) => ({ ...item, nodeId: a.nodeId })));
    if (flags.json) return printJson(output, all);
    printTable(
      output,
      ['service', 'pending', 'oldest', 'parked', 'node'],
      all.map((o) => [
        o.service,
        o.pending,
        o.pending === 0 || o.oldestAgeMs === null ? null : `${o.oldestAgeMs}ms`,
        o.parked,
        o.nodeId,
      ]),
    );
  });
}

// ---------------------------------------------------------------------------------------------------
// Dead letters

interface QueueInfo {
  queue: string;
  kind: 'event' | 'rpc';
  count: number;
}

export async function dlqList(flags: ListFlags, output: Output): Promise<void> {
  await withConnection(flags, async (connection) => {
    const all = (
      await everyNode<QueueInfo[]>(connection, 'dlq.list', serviceInput(flags), { service: flags.service })
    ).flatMap((a) => a.answer.map((item) => ({ ...item, nodeId: a.nodeId })));
    if (flags.json) return printJson(output, all);
    printTable(
      output,
      ['queue', 'kind', 'letters', 'nodes'],
      mergeBy(all, (q) => q.queue).map(({ item, nodeIds }) => [item.queue, item.kind, item.count, nodeIds.join(',')]),
    );
  });
}

interface Letter {
  id: string | null;
  reason: string;
  at: string;
  event: string | null;
  payload: unknown;
}

export async function dlqShow(
  queue: string,
  flags: ConnectFlags & { json?: boolean; id?: string; limit?: number },
  output: Output,
): Promise<void> {
  await withConnection(flags, async (connection) => {
    const nodeId = await nodeForQueue(connection, queue);
    const shown = (await answered(() =>
      connection.ops(nodeId, 'dlq.show', {
        queue,
        ...(flags.id === undefined ? {} : { id: flags.id }),
        ...(flags.limit === undefined ? {} : { limit: flags.limit }),
      }),
    )) as { queue: string; count: number; letters: Letter[] };
    if (flags.json || flags.id !== undefined)
      return printJson(output, flags.id === undefined ? shown : shown.letters[0]);
    output.say(
      `${shown.count} dead letters in ${queue}${shown.count > shown.letters.length ? ` (the oldest ${shown.letters.length})` : ''}`,
    );
    printTable(
      output,
      ['id', 'at', 'reason', 'payload'],
      shown.letters.map((l) => [l.id, l.at, truncate(l.reason, 50), truncate(JSON.stringify(l.payload), 60)]),
    );
  });
}

/** The nodes that run the subscription a queue holds the letters of (a replay must run on one). */
/** `market.order_created` → `market`; `rpc.orders` → `orders`. */
function serviceOfQueue(queue: string): string {
  const [first, second] = queue.split('.');
  return first === 'rpc' && second !== undefined ? second : (first ?? queue);
}

/** A node to ask about a queue: one that runs its service, else any (any node can show and purge). */
async function nodeForQueue(connection: Connection, queue: string): Promise<string> {
  const ids = await connection.nodeIds(serviceOfQueue(queue)).catch(() => answered(() => connection.nodeIds()));
  return ids[0]!;
}

async function nodesRunning(connection: Connection, queue: string): Promise<string[]> {
  const answers = await everyNode<QueueInfo[]>(connection, 'dlq.list', {}, { service: serviceOfQueue(queue) });
  return answers.filter((a) => a.answer.some((q) => q.queue === queue && q.kind === 'event')).map((a) => a.nodeId);
}

interface ReplayAnswer {
  replayed: number;
  handled: string[];
  failed: { id: string | null; reason: string }[];
  remaining: number;
}

/**
 * Replays in batches, with progress on a terminal; stops when the queue is empty or a batch handled
 * nothing (the letters that still fail stay at its head). Exit code 1 when some still fail.
 */
export async function dlqReplay(
  queue: string,
  flags: ConnectFlags & { json?: boolean; id?: string[]; limit?: number; node?: string; batch?: number },
  output: Output,
): Promise<number> {
  return withConnection(flags, async (connection) => {
    let nodeId = flags.node;
    if (nodeId === undefined) {
      [nodeId] = await nodesRunning(connection, queue);
      if (nodeId === undefined) {
        throw new CliError(
          `No running node runs the subscription ${queue}: \`chassis dlq list\` shows the queues; requests (rpc.*) cannot be replayed, only purged`,
        );
      }
    }
    const target = nodeId;
    const replay = (input: Record<string, unknown>) =>
      answered(() => connection.ops(target, 'dlq.replay', { queue, ...input }, 120_000)) as Promise<ReplayAnswer>;
    const total: ReplayAnswer = { replayed: 0, handled: [], failed: [], remaining: 0 };
    const add = (answer: ReplayAnswer) => {
      total.replayed += answer.replayed;
      total.handled.push(...answer.handled);
      total.failed.push(...answer.failed);
      total.remaining = answer.remaining;
    };
    if (flags.id !== undefined && flags.id.length > 0) {
      add(await replay({ ids: flags.id }));
    } else {
      const wanted = flags.limit ?? Number.POSITIVE_INFINITY;
      const batch = flags.batch ?? 50;
      const tty = process.stderr.isTTY === true;
      for (;;) {
        const answer = await replay({ limit: Math.min(batch, wanted - total.replayed) });
        add(answer);
        if (tty)
          output.say(
            `\rreplayed ${total.replayed}: ${total.handled.length} handled, ${total.failed.length} failed, ${answer.remaining} left`,
          );
        if (answer.handled.length === 0 || answer.remaining === 0 || total.replayed >= wanted) break;
        // The failures of this batch are at the head again: take the next batch past them.
        if (answer.failed.length > 0) break;
      }
    }
    if (flags.json) printJson(output, { queue, nodeId: target, ...total });
    else {
      output.out(
        `${queue}: replayed ${total.replayed} on ${target}: ${total.handled.length} handled, ${total.failed.length} still failing, ${total.remaining} left`,
      );
      for (const failure of total.failed) output.out(`  ${failure.id ?? '(no id)'}: ${failure.reason}`);
    }
    return total.failed.length === 0 ? 0 : 1;
  });
}

export async function dlqPurge(
  queue: string,
  flags: ConnectFlags & { json?: boolean; id?: string[]; all?: boolean },
  output: Output,
): Promise<void> {
  if ((flags.id === undefined || flags.id.length === 0) === !flags.all) {
    throw new CliError('Say what to purge: --id <id> (repeatable) for some letters, or --all for every one', {
      usage: true,
    });
  }
  await withConnection(flags, async (connection) => {
    const nodeId = await nodeForQueue(connection, queue);
    const answer = (await answered(() =>
      connection.ops(nodeId, 'dlq.purge', flags.all ? { queue, all: true } : { queue, ids: flags.id }),
    )) as { removed: number; remaining: number };
    if (flags.json) printJson(output, { queue, ...answer });
    else output.out(`${queue}: removed ${answer.removed}, ${answer.remaining} left`);
  });
}

// ---------------------------------------------------------------------------------------------------
// Sagas (the data kit's ops actions)

interface SagaSummary {
  id: string;
  saga: string;
  status: string;
  step?: string | null;
  updatedAt?: string;
  [key: string]: unknown;
}

export async function sagasList(
  flags: ListFlags & { saga?: string; status?: string; limit?: number },
  output: Output,
): Promise<void> {
  await withConnection(flags, async (connection) => {
    const input = {
      ...serviceInput(flags),
      ...(flags.saga === undefined ? {} : { saga: flags.saga }),
      ...(flags.status === undefined ? {} : { status: flags.status }),
      ...(flags.limit === undefined ? {} : { limit: flags.limit }),
    };
    const answers = await everyNode<
      {
        service: string;
        sagas: string[];
        instances: SagaSummary[];
        counts: { saga: string; status: string; count: number }[];
      }[]
    >(connection, 'sagas.list', input, { skipUnknown: true, service: flags.service });
    // Replicas of a service share its database: each service once.
    const byService = new Map(answers.flatMap((a) => a.answer).map((s) => [s.service, s]));
    if (flags.json) return printJson(output, [...byService.values()]);
    // How many of each saga are in each state, per service, before the newest instances themselves.
    for (const s of byService.values()) {
      const counts = s.counts.map((c) => `${c.count} ${c.saga} ${c.status}`).join(', ');
      output.say(`${s.service}: sagas ${s.sagas.join(', ') || '(none)'}; ${counts || 'no instances'}`);
    }
    printTable(
      output,
      ['id', 'service', 'saga', 'status', 'step', 'updated'],
      [...byService.values()].flatMap((s) =>
        s.instances.map((i) => [
          i.id,
          s.service,
          i.saga,
          i.status,
          (i.step as string | undefined) ?? (i.currentStep as string | undefined) ?? null,
          (i.updatedAt as string | undefined) ?? null,
        ]),
      ),
    );
  });
}

/** show, retry, abort: on the first node whose data kit has the saga. */
export async function sagaAction(
  action: 'sagas.show' | 'sagas.retry' | 'sagas.abort',
  id: string,
  flags: ConnectFlags & { service?: string; reason?: string },
  output: Output,
): Promise<void> {
  await withConnection(flags, async (connection) => {
    const input = {
      id,
      ...(flags.service === undefined ? {} : { service: flags.service }),
      ...(flags.reason === undefined ? {} : { reason: flags.reason }),
    };
    const ids = await answered(() => connection.nodeIds(flags.service));
    let sawDataKit = false;
    for (const nodeId of ids) {
      try {
        printJson(output, await connection.ops(nodeId, action, input));
        return;
      } catch (error) {
        if (isChassisError(error) && error.code === 'UNKNOWN_ACTION') continue;
        if (isChassisError(error) && error.code === 'NOT_FOUND') {
          sawDataKit = true;
          continue;
        }
        throw describeError(error);
      }
    }
    throw new CliError(
      sawDataKit
        ? `No saga ${id} on any running node: \`chassis sagas list\` shows them`
        : 'No running node has sagas (the data kit, dataExtension(), is not in the system)',
    );
  });
}
