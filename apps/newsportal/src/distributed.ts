import { fileURLToPath } from 'node:url';
import { envKnownPort } from '@chassis/core';
import { createDatabaseIfMissing } from '@chassis/data';
import { processGroup } from '@chassis/testing';
import { processGroups } from './topology.ts';

/**
 * `npm run start:newsportal:distributed`: the News portal as one process per service group on this
 * machine, over NATS (`CHASSIS_TRANSPORT`, default nats://127.0.0.1:4222) and PostgreSQL (`DATABASE_URL`,
 * default postgres://postgres@127.0.0.1:5432/newsportal, created if missing), sharing the Redis at
 * `REDIS_URL`. The edge process serves the gateway on `PORT` (8080). Ctrl-C stops them all.
 */

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
const transport = process.env.CHASSIS_TRANSPORT ?? 'nats://127.0.0.1:4222';
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/newsportal';
const port = envKnownPort(process.env, 'PORT', 8080);
console.log(`Starting the News portal distributed over ${transport} and ${databaseUrl} …`);
await createDatabaseIfMissing(databaseUrl);

const processes = processGroup();
const startGroup = (group: (typeof processGroups)[number]) =>
  processes.start({
    name: group.name,
    script: MAIN,
    env: {
      CHASSIS_TRANSPORT: transport,
      DATABASE_URL: databaseUrl,
      SERVICES: group.services,
      PORT: group.gateway ? String(port) : 'off',
      OPS_PORT: 'off',
      NODE_ID: group.name,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    },
    // One after another: each migrates its own schemas before the next starts.
    ready: group.gateway ? { url: `http://127.0.0.1:${port}/v1/users/healthcheck` } : 'first-line',
  });

const stop = () => processes.stop().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

try {
  // The edge last: its gateway answering means every service it calls has a process to answer.
  for (const group of processGroups.filter((g) => !g.gateway)) await startGroup(group);
  for (const group of processGroups.filter((g) => g.gateway)) await startGroup(group);
} catch (error) {
  await processes.stop();
  throw error;
}
console.log(`The News portal is up: API http://127.0.0.1:${port} (docs http://127.0.0.1:${port}/docs)`);
console.log(`Processes: ${[...processes.processes.keys()].join(', ')}. Ctrl-C stops them all.`);
