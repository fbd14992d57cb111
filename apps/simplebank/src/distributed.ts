import { envKnownPort } from '@chassis/core';
import { launchDistributed } from './launcher.ts';

/**
 * `npm run start:distributed`: SimpleBank as separate processes on this machine — the exchange
 * simulator, two orders and two market instances, the ledger with fees, and an edge process with the
 * gateway — over NATS (or `CHASSIS_TRANSPORT=amqp://…`) and PostgreSQL (`DATABASE_URL`, created if
 * missing). Ctrl-C stops them all.
 */
const transport = process.env.CHASSIS_TRANSPORT ?? 'nats://127.0.0.1:4222';
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/simplebank';
console.log(`Starting SimpleBank distributed over ${transport} and ${databaseUrl} …`);
const bank = await launchDistributed({
  transport,
  databaseUrl,
  port: envKnownPort(process.env, 'PORT', 8080),
  logLevel: process.env.LOG_LEVEL,
});
console.log(`SimpleBank is up: API ${bank.url} (docs ${bank.url}/docs), exchange ${bank.exchangeUrl}`);
console.log(`Processes: ${[...bank.processes.keys()].join(', ')}. Ctrl-C stops them all.`);
const shutdown = () => {
  console.log('Stopping …');
  bank.stop().then(() => process.exit(0));
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
