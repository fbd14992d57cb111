import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { connect as amqpConnect } from 'amqplib';

/**
 * Removes what test runs left on the shared local brokers: durable JetStream consumers and RabbitMQ
 * queues and exchanges whose names carry one of the given run suffixes. Durable state outlives the
 * process by design, so without this every run would leave its subscriptions behind for good.
 */
const run = promisify(execFile);

export async function removeNatsTestState(url: string, suffixes: readonly string[], stream = 'CHASSIS_EVENTS') {
  if (suffixes.length === 0) return;
  const nc = await natsConnect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const doomed: string[] = [];
    try {
      for await (const consumer of jsm.consumers.list(stream)) {
        if (suffixes.some((suffix) => consumer.name.includes(suffix))) doomed.push(consumer.name);
      }
    } catch (error) {
      // A fresh server has no stream yet, so there is nothing to remove.
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) return;
      throw error;
    }
    await Promise.all(doomed.map((name) => jsm.consumers.delete(stream, name).catch(() => false)));
  } finally {
    await nc.close();
  }
}

export async function removeRabbitmqTestState(url: string, suffixes: readonly string[]) {
  if (suffixes.length === 0) return;
  const list = async (what: 'list_queues' | 'list_exchanges') =>
    (await run('rabbitmqctl', [what, 'name', '--quiet', '--no-table-headers'])).stdout
      .split('\n')
      .map((line) => line.trim())
      .filter((name) => suffixes.some((suffix) => name.includes(suffix)));
  const [queues, exchanges] = await Promise.all([list('list_queues'), list('list_exchanges')]);
  const connection = await amqpConnect(url);
  try {
    const channel = await connection.createChannel();
    for (const queue of queues) await channel.deleteQueue(queue);
    for (const exchange of exchanges) await channel.deleteExchange(exchange);
    await channel.close();
  } finally {
    await connection.close();
  }
}
