import { removeNatsTestState, removeRabbitmqTestState } from '@chassis/testing';
import { simplebankServiceNames } from '../src/services.ts';

/**
 * Removes SimpleBank's durable consumers (NATS) or queues (RabbitMQ), named after its services.
 * Durable subscriptions outlive their nodes: a run cut short leaves messages of its orders behind,
 * which the next run's services (same names, another database) would take up.
 */
export async function removeBrokerState(url: string): Promise<void> {
  const names = simplebankServiceNames();
  if (url.startsWith('nats')) await removeNatsTestState(url, names);
  else await removeRabbitmqTestState(url, names);
}
