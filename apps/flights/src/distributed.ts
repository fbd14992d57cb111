import { envKnownPort } from '@chassis/core';
import { launchDistributed } from './launcher.ts';

/**
 * `npm run start:flights:distributed`: the flights service, the reservations service and the BFF as
 * three processes over NATS (`CHASSIS_TRANSPORT`), with the flights service on MariaDB (`DATABASE_URL`;
 * its `flights` database created by the migrations) and reservations on `REDIS_URL`. Ctrl-C stops them all.
 */
const transport = process.env.CHASSIS_TRANSPORT ?? 'nats://127.0.0.1:4222';
const databaseUrl = process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
console.log(`Starting flight reservations over ${transport}, ${databaseUrl} and ${redisUrl} …`);
const system = await launchDistributed({
  transport,
  databaseUrl,
  flightsSchema: process.env.FLIGHTS_SCHEMA,
  redisUrl,
  port: envKnownPort(process.env, 'PORT', 8080),
  flightsPort: Number(process.env.FLIGHTS_PORT ?? 8081),
  reservationsPort: Number(process.env.RESERVATIONS_PORT ?? 8082),
  redisKeyPrefix: process.env.REDIS_KEY_PREFIX,
  logLevel: process.env.LOG_LEVEL,
});
console.log(`Up: BFF ${system.url}/api, flights ${system.flightsUrl}, reservations ${system.reservationsUrl}`);
console.log(`Processes: ${[...system.processes.keys()].join(', ')}. Ctrl-C stops them all.`);
const shutdown = () => {
  console.log('Stopping …');
  system.stop().then(() => process.exit(0));
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
