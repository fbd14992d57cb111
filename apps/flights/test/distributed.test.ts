import { randomBytes } from 'node:crypto';
import { freePort, postgresTarget, servers, skipUnlessUp } from '@chassis/testing';
import { launchDistributed } from '../src/launcher.ts';
import { describeFlights } from './scenarios.ts';

/**
 * The same scenarios on the distributed topology: the flights service, the reservations service and
 * the BFF as three processes (src/launcher.ts, as `npm run start:flights:distributed` runs them) over
 * NATS, the flights service on a database of this run's own, reservations under a Redis key prefix of
 * its own.
 */
const postgres = await postgresTarget();
const skip = (await skipUnlessUp('nats')) || (await skipUnlessUp('redis')) || postgres.skip;

describeFlights('distributed (three processes over NATS; PostgreSQL, Redis)', skip, async () => {
  const databaseUrl = await postgres.newDatabase();
  const [port, flightsPort, reservationsPort] = [await freePort(), await freePort(), await freePort()];
  const output: string[] = [];
  try {
    const system = await launchDistributed({
      transport: servers.nats.url,
      databaseUrl,
      redisUrl: servers.redis.url,
      redisKeyPrefix: `test-flights-${randomBytes(4).toString('hex')}:`,
      port,
      flightsPort,
      reservationsPort,
      output: (line) => output.push(line),
    });
    return {
      ...system,
      stop: async () => {
        await system.stop();
        await postgres.cleanup();
      },
    };
  } catch (error) {
    await postgres.cleanup();
    throw new Error(`${error instanceof Error ? error.message : error}\n${output.join('\n')}`);
  }
});
