import { randomBytes } from 'node:crypto';
import { Database } from '@chassis/data';
import { freePort, servers, skipUnlessUp } from '@chassis/testing';
import { launchDistributed } from '../src/launcher.ts';
import { describeFlights } from './scenarios.ts';

/**
 * The same scenarios on the distributed topology: the flights service, the reservations service and
 * the BFF as three processes (src/launcher.ts, as `npm run start:flights:distributed` runs them) over
 * NATS, the flights service on MariaDB (a database of this run's own, created by its migrations and
 * dropped after), reservations on Redis under a key prefix of this run's own.
 */
const skip = (await skipUnlessUp('nats')) || (await skipUnlessUp('redis')) || (await skipUnlessUp('mariadb'));

describeFlights('distributed (three processes over NATS; MariaDB, Redis)', skip, async () => {
  const run = randomBytes(4).toString('hex');
  const schema = `test_flights_${run}`;
  const [port, flightsPort, reservationsPort] = [await freePort(), await freePort(), await freePort()];
  const output: string[] = [];
  const dropSchema = async () => {
    const db = await Database.open(servers.mariadb.url);
    try {
      await db.kysely.schema.dropSchema(schema).ifExists().execute();
    } finally {
      await db.close();
    }
  };
  try {
    const system = await launchDistributed({
      transport: servers.nats.url,
      databaseUrl: servers.mariadb.url,
      flightsSchema: schema,
      redisUrl: servers.redis.url,
      redisKeyPrefix: `test-flights-${run}:`,
      port,
      flightsPort,
      reservationsPort,
      // The races send hundreds of requests from one agent within the minute.
      rateLimitPerMinute: 'off',
      output: (line) => output.push(line),
    });
    return {
      ...system,
      databaseKind: 'mysql',
      stop: async () => {
        await system.stop();
        await dropSchema();
      },
    };
  } catch (error) {
    await dropSchema();
    throw new Error(`${error instanceof Error ? error.message : error}\n${output.join('\n')}`);
  }
});
