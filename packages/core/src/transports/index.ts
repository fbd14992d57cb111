import { ChassisError } from '../errors.ts';
import { memoryTransport } from './memory.ts';
import type { Transport } from './transport.ts';

/**
 * Makes the transport a `CHASSIS_TRANSPORT` value names: `memory`, `nats://…` or `amqp://…`.
 * NATS and RabbitMQ clients load only when asked for, so the all-in-one default stays lean.
 */
export async function createTransport(url: string, options: { nodeId?: string } = {}): Promise<Transport> {
  if (url === 'memory') return memoryTransport();
  const scheme = url.slice(0, url.indexOf('://'));
  if (scheme === 'nats') {
    const { natsTransport } = await import('./nats/index.ts');
    return natsTransport({ url, ...options });
  }
  if (scheme === 'amqp' || scheme === 'amqps') {
    const { amqpTransport } = await import('./amqp/index.ts');
    return amqpTransport({ url, ...options });
  }
  throw new ChassisError(
    'CONFIG',
    `Unknown transport "${url}": use memory, nats://host:port or amqp://user:pass@host:port`,
  );
}
