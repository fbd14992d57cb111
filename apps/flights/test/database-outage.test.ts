import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Database } from '@chassis/data';
import { postgresTarget, servers, skipUnlessUp } from '@chassis/testing';
import { type FlightsSystem, startFlights } from '../src/system.ts';
import { apiClient } from './openapi-check.ts';

/**
 * The flights database going away while the system runs: its connections pass through a TCP proxy of
 * this test's, which is then cut. The flights service answers 503 (never a 500), its health check
 * fails naming the database, and the BFF's answers that need it are 503s too.
 */
const postgres = await postgresTarget();

/** Forwards a local port to `target`; `cut()` closes it and every connection through it. */
async function tcpProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(target.port, target.host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

interface Target {
  name: string;
  kind: string;
  skip: false | string;
  /** A URL of a database of this run's own, and the schema the flights service is to use in it. */
  create(): Promise<{ url: URL; schema?: string }>;
  cleanup(): Promise<void>;
}

const schema = `test_flights_outage_${randomBytes(4).toString('hex')}`;
const targets: Target[] = [
  {
    name: 'PostgreSQL',
    kind: 'postgres',
    skip: postgres.skip,
    create: async () => ({ url: new URL(await postgres.newDatabase()) }),
    cleanup: () => postgres.cleanup(),
  },
  {
    name: 'MariaDB',
    kind: 'mysql',
    skip: await skipUnlessUp('mariadb'),
    create: async () => ({ url: new URL(servers.mariadb.url), schema }),
    cleanup: async () => {
      const db = await Database.open(servers.mariadb.url);
      await db.kysely.schema.dropSchema(schema).ifExists().execute();
      await db.close();
    },
  },
];

for (const target of targets) {
  describe(`the flights database (${target.name}) goes away`, { skip: target.skip }, () => {
    let system: FlightsSystem;
    let proxy: Awaited<ReturnType<typeof tcpProxy>>;
    before(async () => {
      const { url, schema } = await target.create();
      proxy = await tcpProxy({ host: url.hostname, port: Number(url.port) });
      url.port = String(proxy.port);
      system = await startFlights({
        env: {
          CHASSIS_TRANSPORT: 'memory',
          SERVICES: 'flights,bff',
          DATABASE_URL: url.toString(),
          FLIGHTS_SCHEMA: schema,
          PORT: '0',
          FLIGHTS_PORT: '0',
          OPS_PORT: 'off',
          LOG_LEVEL: 'silent',
        },
      });
    });
    after(async () => {
      await system?.stop();
      await target.cleanup();
    });

    test('503 from the service and the BFF, and the health check says the database is down', async () => {
      const flights = apiClient('flights', system.flightsUrl!);
      const bff = apiClient('bff', system.url!);
      const token = (await bff('POST', '/api/auth/token', { body: { username: 'flyer', password: 'flyer-password' } }))
        .body.access_token;
      const path = '/flights?flight_no=AA2532&departure_date_time=2027-05-17T13:20';
      assert.equal((await flights('GET', path)).status, 200);
      await proxy.cut();
      const down = await flights('GET', path);
      assert.equal(down.status, 503, JSON.stringify(down.body));
      const search = await bff('GET', '/api/flights/search?from=LAX&to=DCA&date=2027-05-17', { token });
      assert.deepEqual([search.status, search.body.error.code], [503, 'UNAVAILABLE']);
      const health = await flights('GET', '/health');
      assert.equal(health.status, 503);
      const check = health.body.checks['database:responseTime'][0];
      assert.deepEqual([check.status, check.componentId], ['fail', target.kind]);
    });
  });
}
