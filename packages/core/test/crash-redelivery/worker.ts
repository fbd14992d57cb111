/**
 * A node in its own process whose one event handler kills that process (SIGKILL: no drain, no ack, no
 * disposition) on every delivery, for the crash-redelivery test. Names carry SUFFIX so runs never meet.
 * The first RETRIES attempts instead fail with a retryable error (a dependency outage): the runtime asks the
 * broker for a redelivery, which must not count as a lost delivery.
 *
 * Env: TRANSPORT (`nats://…` or `amqp://…`), SUFFIX, MAX_DELIVERIES, RETRIES, ACK_WAIT_MS (NATS).
 * Lines out: `ready`; `received <message id> <attempt>` just before it dies.
 */
import { writeSync } from 'node:fs';
import { ChassisError, createNode, createTransport } from '@chassis/core';
import { crashingService } from './service.ts';

const env = process.env;
// Synchronous: the process dies right after the line.
const say = (line: string) => writeSync(1, `${line}\n`);
const retries = Number(env.RETRIES ?? 0);

const node = createNode({
  services: [
    crashingService(env.SUFFIX!, Number(env.MAX_DELIVERIES), (ctx) => {
      say(`received ${ctx.messageId} ${ctx.attempt}`);
      if (ctx.attempt <= retries) throw new ChassisError('UNAVAILABLE', 'the ledger is unreachable');
      process.kill(process.pid, 'SIGKILL');
    }),
  ],
  transport: await createTransport(env.TRANSPORT!, { nats: { ackWaitMs: Number(env.ACK_WAIT_MS ?? 2000) } }),
  logLevel: 'silent',
  // Retries come back quickly.
  redelivery: { initialDelayMs: 100, maxDelayMs: 200 },
});
await node.start();
say('ready');
