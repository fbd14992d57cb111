import { envKnownPort } from '@chassis/core';
import { launchDistributed } from './launcher.ts';

/**
 * `npm run start:shop:distributed`: the Shop as separate processes on this machine — the edge with the
 * gateway, two orders instances, payments — over RabbitMQ (the book's broker; `CHASSIS_TRANSPORT`) and
 * PostgreSQL (`DATABASE_URL`, created if missing). Ctrl-C stops them all.
 */
const transport = process.env.CHASSIS_TRANSPORT ?? 'amqp://guest:guest@127.0.0.1:5672';
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/shop';
console.log(`Starting the Shop distributed over ${transport} and ${databaseUrl} …`);
const shop = await launchDistributed({
  transport,
  databaseUrl,
  port: envKnownPort(process.env, 'PORT', 8080),
  logLevel: process.env.LOG_LEVEL,
});
console.log(`The Shop is up: API ${shop.url}/api/v1 (docs ${shop.url}/docs)`);
console.log(`  try: curl -s '${shop.url}/api/v1/products?q=desk'`);
console.log(`Processes: ${[...shop.processes.keys()].join(', ')}. Ctrl-C stops them all.`);
const shutdown = () => {
  console.log('Stopping …');
  shop.stop().then(() => process.exit(0));
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
