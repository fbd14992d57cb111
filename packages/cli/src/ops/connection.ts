import { hostname } from 'node:os';
import {
  action,
  type ChassisNode,
  callOps,
  callOpsHttp,
  createNode,
  createTransport,
  isChassisError,
  type RegisteredNode,
} from '@chassis/core';
import { z } from 'zod';
import { CliError } from '../output.ts';

/**
 * How the ops commands reach a running system: through its broker, joined as a node that serves nothing
 * (`CHASSIS_TRANSPORT=nats://…` or `amqp://…`), or — for an embedded system on the memory transport,
 * which no broker reaches — through one node's ops HTTP port (`--ops`, by default 127.0.0.1:9400).
 */
export interface ConnectFlags {
  ops?: string;
  transport?: string;
  token?: string;
  secret?: string;
}

export interface CallFlags {
  /** The caller's own token, which the action sees (over the ops port it also opens the ops API). */
  token?: string;
  timeoutMs?: number;
  /** Run the call from this node (over the broker: through its ops API, so it needs ops credentials). */
  nodeId?: string;
}

export interface Connection {
  /** Where it is connected, for messages. */
  readonly target: string;
  readonly kind: 'broker' | 'http';
  /** The ids of the nodes of the system (the CLI's own left out), or of those that run `service`. */
  nodeIds(service?: string): Promise<string[]>;
  /** What the broker's heartbeats say of each node (over HTTP: the node's `nodes` action). */
  nodes(): Promise<RegisteredNode[]>;
  /** One ops action of one node (over HTTP the id is ignored: there is one node). */
  ops(nodeId: string, action: string, input?: unknown, timeoutMs?: number): Promise<unknown>;
  /** An application action, as `node.call` makes it. */
  call(actionName: string, input: unknown, flags: CallFlags): Promise<unknown>;
  close(): Promise<void>;
}

export const DEFAULT_OPS_URL = 'http://127.0.0.1:9400';
/** How long a newcomer waits for the nodes' answers to its discovery broadcast. */
const DISCOVERY_MS = 600;
const CONNECT_TIMEOUT_MS = 5_000;

export function credentialsOf(flags: ConnectFlags): { token?: string; secret?: string } {
  const token = flags.token ?? process.env.CHASSIS_TOKEN;
  const secret = flags.secret ?? process.env.CHASSIS_OPS_SECRET;
  return { ...(token ? { token } : {}), ...(secret ? { secret } : {}) };
}

/** The connection the flags and the environment name. */
export async function connect(flags: ConnectFlags): Promise<Connection> {
  if (shared) return shared;
  const credentials = credentialsOf(flags);
  if (flags.ops !== undefined) return httpConnection(flags.ops, credentials);
  const transportUrl = flags.transport ?? process.env.CHASSIS_TRANSPORT;
  if (transportUrl === undefined || transportUrl === '' || transportUrl === 'memory') {
    return httpConnection(process.env.CHASSIS_OPS_URL ?? DEFAULT_OPS_URL, credentials);
  }
  return brokerConnection(transportUrl, credentials);
}

/** In the repl, every command uses the one connection it opened. */
let shared: Connection | undefined;
export function shareConnection(connection: Connection | undefined): void {
  shared = connection;
}
export function isShared(connection: Connection): boolean {
  return connection === shared;
}

/** Runs `work` on a connection, closed afterwards unless the repl shares it. */
export async function withConnection<T>(flags: ConnectFlags, work: (connection: Connection) => Promise<T>): Promise<T> {
  const connection = await connect(flags);
  try {
    return await work(connection);
  } finally {
    if (!isShared(connection)) await connection.close();
  }
}

function httpConnection(url: string, credentials: { token?: string; secret?: string }): Connection {
  if (!/^https?:\/\//.test(url)) {
    throw new CliError(`--ops ${url} is not an http:// URL (e.g. ${DEFAULT_OPS_URL})`, { usage: true });
  }
  const base = url.replace(/\/+$/, '');
  let nodeId: string | undefined;
  const ops = (action: string, input: unknown = {}, timeoutMs?: number) =>
    callOpsHttp(base, action, input, { ...credentials, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
  const connection: Connection = {
    target: base,
    kind: 'http',
    async nodeIds() {
      nodeId ??= ((await ops('node')) as { nodeId: string }).nodeId;
      return [nodeId];
    },
    async nodes() {
      return (await ops('nodes')) as RegisteredNode[];
    },
    ops: (_nodeId, action, input, timeoutMs) => ops(action, input, timeoutMs),
    call: (actionName, input, flags) =>
      ops(
        'call',
        {
          action: actionName,
          input,
          ...(flags.token === undefined ? {} : { token: flags.token }),
          ...(flags.timeoutMs === undefined ? {} : { timeoutMs: flags.timeoutMs }),
        },
        // The ops request outlives the call it carries.
        (flags.timeoutMs ?? 30_000) + 2_000,
      ),
    close: async () => {},
  };
  return connection;
}

async function brokerConnection(url: string, credentials: { token?: string; secret?: string }): Promise<Connection> {
  const nodeId = `chassis-cli-${hostname()}-${process.pid}`;
  let node: ChassisNode | undefined;
  try {
    const transport = await withTimeout(createTransport(url, { nodeId }), url);
    node = createNode({ services: [], transport, nodeId, logLevel: 'silent' });
    await withTimeout(node.start(), url);
  } catch (error) {
    await node?.stop().catch(() => undefined);
    if (error instanceof CliError) throw error;
    if (isChassisError(error) && error.code === 'CONFIG') throw new CliError(error.message, { usage: true });
    throw new CliError(
      `Cannot reach the broker at ${url}: is it running? (set CHASSIS_TRANSPORT or --transport; --ops <url> for an embedded system)`,
    );
  }
  const self = node;
  // The nodes answer the discovery broadcast node.start() sent with their heartbeats.
  await new Promise((resolve) => setTimeout(resolve, DISCOVERY_MS));
  const others = () => self.registry.list().filter((n) => n.nodeId !== self.id);
  return {
    target: url,
    kind: 'broker',
    async nodeIds(service) {
      const all = others();
      if (all.length === 0) throw new CliError(`No Chassis node answers on ${url}: is the system running there?`);
      const running = service === undefined ? all : all.filter((n) => n.services.some((s) => s.name === service));
      if (running.length === 0) {
        throw new CliError(`No running node runs service ${service}: \`chassis services\` lists the services`);
      }
      return running.map((n) => n.nodeId).sort();
    },
    nodes: async () => others(),
    ops: (id, action, input, timeoutMs) =>
      callOps(self.transport, id, action, input ?? {}, {
        ...credentials,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      }),
    call(actionName, input, flags) {
      if (flags.nodeId !== undefined) {
        return callOps(
          self.transport,
          flags.nodeId,
          'call',
          {
            action: actionName,
            input,
            ...(flags.token === undefined ? {} : { token: flags.token }),
            ...(flags.timeoutMs === undefined ? {} : { timeoutMs: flags.timeoutMs }),
          },
          { ...credentials, timeoutMs: (flags.timeoutMs ?? 30_000) + 2_000 },
        );
      }
      // The CLI has no contracts: a pass-through one, and the serving node checks the input.
      return self.call(passThrough(actionName), input, {
        ...(flags.token === undefined ? {} : { auth: flags.token }),
        ...(flags.timeoutMs === undefined ? {} : { timeoutMs: flags.timeoutMs }),
      });
    },
    close: () => self.stop(),
  };
}

const contracts = new Map<string, ReturnType<typeof passThroughContract>>();
function passThroughContract(name: string) {
  return action(name, { input: z.unknown(), output: z.unknown() });
}
function passThrough(name: string) {
  if (!/^[^.\s]+\.[^.\s]+$/.test(name)) {
    throw new CliError(`"${name}" is not an action name: <service>.<action>, e.g. accounts.open`, { usage: true });
  }
  let contract = contracts.get(name);
  if (!contract) {
    contract = passThroughContract(name);
    contracts.set(name, contract);
  }
  return contract;
}

function withTimeout<T>(promise: Promise<T>, url: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new CliError(
              `No answer from the broker at ${url} in ${CONNECT_TIMEOUT_MS / 1000} s: is it running? (CHASSIS_TRANSPORT or --transport)`,
            ),
          ),
        CONNECT_TIMEOUT_MS,
      );
    }),
  ]);
}
