import { ChassisError } from '../errors.ts';
import type { AmqpTransportOptions } from './amqp/options.ts';
import { memoryTransport } from './memory.ts';
import type { NatsTransportOptions } from './nats/options.ts';
import type { Transport } from './transport.ts';

/** What `createTransport` passes on: the node's id to either broker, and each broker's own settings. */
export interface CreateTransportOptions {
  nodeId?: string;
  /** Used when the URL is `nats://…`. */
  nats?: Omit<NatsTransportOptions, 'url' | 'nodeId'>;
  /** Used when the URL is `amqp://…` or `amqps://…`. */
  amqp?: Omit<AmqpTransportOptions, 'url' | 'nodeId'>;
}

/**
 * Makes the transport a `CHASSIS_TRANSPORT` value names: `memory`, `nats://…` or `amqp://…`.
 * NATS and RabbitMQ clients load only when asked for, so the all-in-one default stays lean.
 */
export async function createTransport(url: string, options: CreateTransportOptions = {}): Promise<Transport> {
  if (url === 'memory') return memoryTransport();
  const scheme = url.slice(0, url.indexOf('://'));
  const nodeId = options.nodeId === undefined ? {} : { nodeId: options.nodeId };
  if (scheme === 'nats') {
    const { natsTransport } = await import('./nats/index.ts');
    return natsTransport({ ...options.nats, ...nodeId, url });
  }
  if (scheme === 'amqp' || scheme === 'amqps') {
    const { amqpTransport } = await import('./amqp/index.ts');
    return amqpTransport({ ...options.amqp, ...nodeId, url });
  }
  throw new ChassisError(
    'CONFIG',
    `Unknown transport "${url}": use memory, nats://host:port or amqp://user:pass@host:port`,
  );
}
