import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { servers, skipUnlessUp, typescriptArgs, waitUntil } from '@chassis/testing';
import { QUEUES, UserStore } from '../services/users/user-store.ts';
import { type Newsportal, startNewsportal } from '../src/system.ts';
import { removeKeys, testKeyPrefix } from './redis-keys.ts';
import { request } from './robot.ts';

/**
 * Users with Redis in trouble: a write-behind worker killed mid-item loses nothing, and while Redis is
 * unreachable (a TCP proxy in front of the real one, cut and restored) reads fall back to the database,
 * writes answer 503 having written nothing, and the health check names Redis.
 */
const skip = await skipUnlessUp('redis');
const redisPort = Number(new URL(servers.redis.url).port || 6379);

/** A TCP proxy to the real Redis that the test can cut (every connection dropped, none accepted) and restore. */
class CuttableProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  async open(): Promise<void> {
    this.server = createServer((client) => {
      const upstream = tcpConnect(redisPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as { port: number }).port;
  }

  async cut(): Promise<void> {
    const closed = new Promise((resolve) => this.server?.close(resolve));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}

describe('users when Redis is in trouble', { skip }, () => {
  const keyPrefix = testKeyPrefix();
  const proxy = new CuttableProxy();
  let portal: Newsportal | undefined;
  let url: string;
  let child: ChildProcess | undefined;
  const call = (method: string, path: string, body?: unknown) =>
    request(url, method, path, body === undefined ? {} : { body });

  before(async () => {
    await proxy.open();
  });
  after(async () => {
    child?.kill('SIGKILL');
    await portal?.stop();
    await proxy.cut();
    await removeKeys(keyPrefix);
  });

  it('loses nothing when a write-behind worker is killed in the middle of an item', async () => {
    // The stuck worker is the only one while the user is queued: it takes the id, then is killed.
    child = spawn(
      process.execPath,
      [...typescriptArgs(), fileURLToPath(new URL('./fixtures/stuck-worker.ts', import.meta.url))],
      {
        env: { ...process.env, REDIS_URL: servers.redis.url, REDIS_KEY_PREFIX: keyPrefix, LEASE_MS: '1000' },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    await waitUntil(() => output.includes('ready'), { timeoutMs: 10_000, what: 'the stuck worker to start' });
    const store = new UserStore({ url: servers.redis.url, keyPrefix });
    await store.ready();
    const user = { id: 4242, name: 'Queued', email: `queued-${keyPrefix.slice(-9, -1)}@example.com` };
    await store.write(
      QUEUES.create,
      { op: 'upsert', user: { ...user, password_hash: '$2b$10$notarealhash' } },
      {
        cacheIt: true,
        claim: user.email,
      },
    );
    await store.close();
    await waitUntil(() => output.includes('popped 4242'), { timeoutMs: 5000, what: 'the worker to pop the id' });
    child.kill('SIGKILL');
    await once(child, 'exit');
    child = undefined;

    // Users starts after the kill: its workers find the dead worker's id once its lease lapses.
    portal = await startNewsportal({
      port: 0,
      databaseUrl: 'pglite://memory',
      env: {
        CHASSIS_TRANSPORT: 'memory',
        SERVICES: 'users',
        REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
        REDIS_KEY_PREFIX: keyPrefix,
        GRPC_PORT: 'off',
        OPS_PORT: 'off',
        LOG_LEVEL: 'silent',
      },
      services: { users: { workerLeaseMs: 1000 } },
    });
    url = portal.url!;
    await waitUntil(
      async () => {
        const listed = await call('GET', '/v1/users?count=10');
        return (listed.body.users as { id: number }[]).some((row) => row.id === user.id);
      },
      { timeoutMs: 8000, what: 'the id of the killed worker to be persisted by another' },
    );
    const listed = await call('GET', '/v1/users?count=10');
    assert.deepEqual(listed.body.users, [user]);
  });

  it('reads from the database, refuses writes with 503 and says Redis is down; all is well once it is back', async () => {
    const created = await call('POST', '/v1/users', {
      name: 'Before',
      email: `before-${keyPrefix.slice(-9, -1)}@example.com`,
      password: 'password-1',
    });
    assert.equal(created.status, 201);
    const id = created.body.id as number;
    await waitUntil(
      async () => ((await call('GET', '/v1/users?count=10')).body.users as { id: number }[]).some((u) => u.id === id),
      { timeoutMs: 5000, what: 'the user to be persisted' },
    );
    const healthy = await call('GET', '/v1/users/healthcheck');
    assert.equal(healthy.status, 200);
    assert.equal(healthy.body.status, 'pass');

    await proxy.cut();
    await waitUntil(async () => (await call('GET', '/v1/users/healthcheck')).status === 503, {
      timeoutMs: 5000,
      what: 'the health check to see Redis down',
    });
    const health = await call('GET', '/v1/users/healthcheck');
    assert.match(health.body.error!.message, /redis unreachable/);
    const report = health.body.error!.details as unknown as {
      status: string;
      checks: Record<string, { status: string }>;
    };
    assert.equal(report.status, 'warn');
    assert.equal(report.checks.database!.status, 'pass');
    assert.equal(report.checks.redis!.status, 'fail');

    const read = await call('GET', `/v1/users/${id}`);
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.equal(read.body.name, 'Before');
    // The read was counted as answered without Redis; the queues' gauges are left out, the scrape not held up.
    const startedScrape = Date.now();
    const scraped = await portal!.node.metrics.text();
    assert.ok(Date.now() - startedScrape < 2500, 'a scrape does not wait on an unreachable Redis');
    assert.match(scraped, /^newsportal_users_cache_reads_total\{outcome="redis-down"\} [1-9]/m);
    assert.doesNotMatch(scraped, /^newsportal_users_write_queue_length\{/m);
    const refusedEmail = `refused-${keyPrefix.slice(-9, -1)}@example.com`;
    const refused = [
      await call('POST', '/v1/users', { name: 'Refused', email: refusedEmail, password: 'password-1' }),
      await call('PUT', `/v1/users/${id}`, { name: 'Changed' }),
      await call('DELETE', `/v1/users/${id}`),
    ];
    for (const answer of refused) {
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.equal(answer.body.error?.code, 'UNAVAILABLE');
      assert.match(answer.body.error!.message, /Redis/);
    }

    await proxy.open();
    await waitUntil(async () => (await call('GET', '/v1/users/healthcheck')).status === 200, {
      timeoutMs: 10_000,
      what: 'the health check to see Redis back',
    });
    // Nothing of the refused writes was kept: the user is unchanged, and the refused e-mail is free.
    assert.equal((await call('GET', `/v1/users/${id}`)).body.name, 'Before');
    // Read twice more: from the database (a miss, which fills the cache), then from the cache.
    const count = async (outcome: string) =>
      Number(
        new RegExp(`^newsportal_users_cache_reads_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(
          await portal!.node.metrics.text(),
        )?.[1],
      );
    const [hitsBefore, missesBefore] = [await count('hit'), await count('miss')];
    await call('GET', `/v1/users/${id}`);
    await call('GET', `/v1/users/${id}`);
    assert.equal((await count('hit')) + (await count('miss')), hitsBefore + missesBefore + 2);
    assert.ok((await count('hit')) > hitsBefore, 'the second read was a hit');
    const backlog = await portal!.node.metrics.text();
    for (const queue of Object.values(QUEUES)) {
      assert.match(backlog, new RegExp(`^newsportal_users_write_queue_length\\{queue="${queue}"\\} \\d+`, 'm'));
      assert.match(
        backlog,
        new RegExp(`^newsportal_users_write_queue_oldest_age_seconds\\{queue="${queue}"\\} [\\d.e-]+`, 'm'),
      );
    }
    const again = await call('POST', '/v1/users', { name: 'Refused', email: refusedEmail, password: 'password-1' });
    assert.equal(again.status, 201, JSON.stringify(again.body));
  });

  it('reports each write queue’s length and the age of its oldest write not yet persisted', async () => {
    // A prefix of its own with no worker on it: the writes stay queued.
    const prefix = testKeyPrefix();
    const store = new UserStore({ url: servers.redis.url, keyPrefix: prefix });
    try {
      await store.ready();
      const user = (id: number) => ({
        op: 'upsert' as const,
        user: { id, name: `Q${id}`, email: `q${id}-${prefix.slice(-9, -1)}@example.com`, password_hash: 'x' },
      });
      const ofQueue = async (queue: string) => (await store.backlog()).find((backlog) => backlog.queue === queue)!;
      assert.deepEqual(await ofQueue(QUEUES.create), { queue: QUEUES.create, length: 0, oldestAgeSeconds: 0 });
      await store.write(QUEUES.create, user(1), { cacheIt: true });
      await store.write(QUEUES.create, user(2), { cacheIt: true });
      await new Promise((resolve) => setTimeout(resolve, 300));
      // User 1 written again: its queue age still counts from its first write.
      await store.write(QUEUES.update, user(1), { cacheIt: false });
      const created = await ofQueue(QUEUES.create);
      assert.equal(created.length, 2);
      assert.ok(created.oldestAgeSeconds >= 0.3 && created.oldestAgeSeconds < 5, String(created.oldestAgeSeconds));
      const updated = await ofQueue(QUEUES.update);
      assert.equal(updated.length, 1);
      assert.ok(updated.oldestAgeSeconds >= 0.3, 'the same user, queued since its first write');
      // Persisted (settled): the first in line waits for nothing any more.
      const pending = await store.pending(1);
      await store.settle(1, pending!.raw);
      assert.equal((await ofQueue(QUEUES.create)).oldestAgeSeconds, 0);
    } finally {
      await store.close();
      await removeKeys(prefix);
    }
  });
});
