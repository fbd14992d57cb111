import { ChassisError } from '../errors.ts';
import type { TlsFiles } from '../tls.ts';
import type { AmqpTransportOptions } from './amqp/options.ts';
import { memoryTransport } from './memory.ts';
import type { NatsTransportOptions } from './nats/options.ts';
import type { Transport } from './transport.ts';

/** What `createTransport` passes on: the node's id to either broker, and each broker's own settings. */
export interface CreateTransportOptions {
  nodeId?: string;
  /**
   * TLS files for the broker connection (`CHASSIS_TLS_CA_FILE`, `CHASSIS_TLS_CERT_FILE`,
   * `CHASSIS_TLS_KEY_FILE`): NATS then requires TLS even on a `nats://` URL; RabbitMQ needs `amqps://`.
   */
  tls?: TlsFiles;
  /** Used when the URL is `nats://…` or `tls://…`. */
  nats?: Omit<NatsTransportOptions, 'url' | 'nodeId'>;
  /** Used when the URL is `amqp://…` or `amqps://…`. */
  amqp?: Omit<AmqpTransportOptions, 'url' | 'nodeId'>;
}

/**
 * Makes the transport a `CHASSIS_TRANSPORT` value names: `memory`, `nats://…` (`tls://…` for NATS over
 * TLS) or `amqp://…` (`amqps://…`).
 * NATS and RabbitMQ clients load only when asked for, so the all-in-one default stays lean.
 */
export async function createTransport(url: string, options: CreateTransportOptions = {}): Promise<Transport> {
  if (url === 'memory') return memoryTransport();
  const scheme = url.slice(0, url.indexOf('://'));
  const nodeId = options.nodeId === undefined ? {} : { nodeId: options.nodeId };
  const tls = options.tls === undefined ? {} : { tls: options.tls };
  if (scheme === 'nats' || scheme === 'tls') {
    const { natsTransport } = await import('./nats/index.ts');
    return natsTransport({ ...options.nats, ...nodeId, ...tls, url });
  }
  if (scheme === 'amqp' || scheme === 'amqps') {
    const { amqpTransport } = await import('./amqp/index.ts');
    return amqpTransport({ ...options.amqp, ...nodeId, ...tls, url });
  }
  throw new ChassisError(
    'CONFIG',
    `Unknown transport "${url}": use memory, nats://host:port, tls://host:port, amqp://user:pass@host:port or amqps://…`,
  );
}
