import { startSimplebank } from '@chassis/simplebank/system';
import {
  lastCompletedAt,
  SECRET,
  seedCustomers,
  type TerminalCounts,
  terminalCounts,
  terminalTimes,
} from './simplebank-load.ts';

/**
 * The embedded SimpleBank as `npm start` runs it — every service in one process, the memory transport,
 * PGlite in a folder, the exchange simulator beside them — started by the SimpleBank benchmark as a
 * child process, so that its CPU and memory are this process's alone. It seeds the bench's customers,
 * says where its gateway listens, and answers the bench's questions about orders over IPC (PGlite has
 * one connection, in this process).
 *
 * argv: <pglite folder> <customers>
 */

export type EmbeddedAsk = { ask: 'counts' } | { ask: 'lastCompletedAt' } | { ask: 'terminalTimes'; orderIds: string[] };

export type EmbeddedQuestion = EmbeddedAsk & { id: number };

export type EmbeddedMessage =
  | { ready: true; url: string; customers: Awaited<ReturnType<typeof seedCustomers>> }
  | { id: number; answer: TerminalCounts | number | Record<string, number> }
  | { id: number; error: string };

const [folder, count] = process.argv.slice(2);
const send = (message: EmbeddedMessage) => process.send?.(message);

// A bench that dies (killed at a timeout) leaves no bank behind to load the machine.
process.once('disconnect', () => process.exit(1));
const bank = await startSimplebank({
  databaseUrl: `pglite://${folder}`,
  port: 0,
  // Errors only: the notifications service warns, per order, that bench customers have no contact.
  env: { LOG_LEVEL: 'error', ...process.env, RATE_LIMIT_PER_MINUTE: 'off', CHASSIS_JWT_SECRET: SECRET },
});
const customers = await seedCustomers(bank.database, Number(count));
process.on('message', (question: EmbeddedQuestion) => {
  const answer =
    question.ask === 'counts'
      ? terminalCounts(bank.database)
      : question.ask === 'lastCompletedAt'
        ? lastCompletedAt(bank.database)
        : terminalTimes(bank.database, question.orderIds);
  answer.then(
    (value) => send({ id: question.id, answer: value }),
    (error: unknown) => send({ id: question.id, error: String(error) }),
  );
});
process.once('SIGTERM', () => {
  bank.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
send({ ready: true, url: bank.url!, customers });
