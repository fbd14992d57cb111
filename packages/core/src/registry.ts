import { z } from 'zod';
import { codecFor, decodeBody, Header } from './envelope.ts';
import type { Logger } from './logger.ts';
import type { Consumer, Transport } from './transports/transport.ts';

/**
 * Node heartbeats: who is running what. Routing never depends on it (the broker is the load balancer);
 * it exists to list nodes, services, actions and versions for operators and tools.
 */

export const nodeInfoSchema = z.object({
  nodeId: z.string(),
  host: z.string(),
  pid: z.number(),
  transport: z.string(),
  startedAt: z.number(),
  status: z.enum(['up', 'draining', 'left']),
  services: z.array(
    z.object({
      name: z.string(),
      version: z.string(),
      actions: z.array(z.string()),
      events: z.array(z.string()),
    }),
  ),
});

export type NodeInfo = z.output<typeof nodeInfoSchema>;

export interface RegisteredNode extends NodeInfo {
  /** Epoch ms of the last heartbeat heard. */
  lastSeen: number;
}

const HEARTBEAT = 'heartbeat';
const DISCOVER = 'discover';
const json = codecFor('json');

export class Registry {
  private readonly nodes = new Map<string, RegisteredNode>();
  private readonly consumers: Consumer[] = [];
  private timer: NodeJS.Timeout | undefined;

  private readonly transport: Transport;
  private readonly self: () => NodeInfo;
  private readonly log: Logger;
  private readonly intervalMs: number;

  constructor(transport: Transport, self: () => NodeInfo, log: Logger, intervalMs: number) {
    this.transport = transport;
    this.self = self;
    this.log = log;
    this.intervalMs = intervalMs;
  }

  async start(): Promise<void> {
    this.consumers.push(
      await this.transport.listen(HEARTBEAT, (message) => this.heard(message)),
      // A newcomer asks; everyone answers with a heartbeat at once, so the list is complete quickly.
      await this.transport.listen(DISCOVER, () => void this.beat()),
    );
    await this.beat();
    await this.transport.broadcast(DISCOVER, {
      headers: { [Header.contentType]: json.contentType },
      body: json.encode({}),
    });
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.beat();
    await Promise.all(this.consumers.splice(0).map((consumer) => consumer.stop()));
  }

  /** Nodes heard from within three heartbeat intervals, this one included. */
  list(): RegisteredNode[] {
    const since = Date.now() - 3 * this.intervalMs;
    return [...this.nodes.values()].filter((node) => node.lastSeen >= since && node.status !== 'left');
  }

  /** The nodes running a service, with the version each runs. */
  instancesOf(service: string): RegisteredNode[] {
    return this.list().filter((node) => node.services.some((s) => s.name === service));
  }

  private async beat(): Promise<void> {
    try {
      await this.transport.broadcast(HEARTBEAT, {
        headers: { [Header.contentType]: json.contentType },
        body: json.encode(this.self()),
      });
    } catch (error) {
      this.log.debug({ err: error }, 'heartbeat not sent');
    }
  }

  private heard(message: Parameters<Parameters<Transport['listen']>[1]>[0]): void {
    try {
      const info = nodeInfoSchema.parse(decodeBody(message));
      if (info.status === 'left') this.nodes.delete(info.nodeId);
      else this.nodes.set(info.nodeId, { ...info, lastSeen: Date.now() });
    } catch (error) {
      this.log.warn({ err: error }, 'ignored a heartbeat that could not be read');
    }
  }
}
