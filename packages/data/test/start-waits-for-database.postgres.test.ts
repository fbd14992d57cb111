import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineService } from '@chassis/core';
import { dataExtension, sql } from '@chassis/data';
import { freePort, memoryTarget, postgresTarget, useCluster } from '@chassis/testing';

const postgres = await postgresTarget();
const migrations = new URL('./fixtures/migrations/ledger/', import.meta.url);

/** A TCP relay to the real server on `port`, started when the test says: the database "comes up". */
function relayTo(target: URL, port: number): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => socket.destroy());
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  server.on('close', () => {
    for (const socket of sockets) socket.destroy();
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

describe('a node whose database is not reachable yet', { skip: postgres.skip }, () => {
  const cluster = useCluster(memoryTarget());
  after(() => postgres.cleanup());

  it('[postgres] waits for it, then migrates and starts; a database that does not exist fails at once', async () => {
    const real = new URL(await postgres.newDatabase());
    const port = await freePort();
    const late = new URL(real);
    late.host = `127.0.0.1:${port}`;
    const ledger = defineService({ name: `ledger-${cluster.suffix}`, migrations });
    const data = dataExtension({ url: late.toString() });

    let relay: Server | undefined;
    try {
      const starting = cluster.startNode([ledger], { extensions: [data] });
      await sleep(1200);
      relay = await relayTo(real, port);
      await starting;
      const tables = await sql<{ n: number }>`
        select count(*)::int as n from information_schema.tables where table_schema = ${ledger.name}`.execute(
        data.database.kysely,
      );
      assert.ok(tables.rows[0]!.n >= 2, 'the service was migrated once the database came up');
    } finally {
      // The node (stopped after the test) is done with the relay's connections by then; closing it
      // now would only cut them early.
      after(() => new Promise((resolve) => (relay ? relay.close(resolve) : resolve(undefined))));
    }

    const missing = new URL(real);
    missing.pathname = '/chassis_test_does_not_exist';
    const started = Date.now();
    await assert.rejects(
      cluster.startNode([defineService({ name: `ledger2-${cluster.suffix}`, migrations })], {
        extensions: [dataExtension({ url: missing.toString() })],
      }),
      (error: Error & { code?: string }) => error.code === 'CONFIG',
    );
    assert.ok(Date.now() - started < 5000, 'a misconfiguration is not waited on');
  });
});
