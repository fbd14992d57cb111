import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Database } from '@chassis/data';
import {
  freePort,
  postgresTarget,
  requestJson,
  restartRabbitmq,
  servers,
  skipUnlessUp,
  waitUntil,
} from '@chassis/testing';
import { type DistributedShop, launchDistributed } from '../src/launcher.ts';
import { checkPaymentsMatchOrders } from './flow.ts';
import { temporaryVhost } from './rabbitmq-vhost.ts';

/**
 * Chaos on RabbitMQ: the distributed Shop as processes; while orders stream in, payments is SIGKILLed
 * twice and an orders instance once (each restarted after a moment), and the broker itself is restarted
 * (`rabbitmqctl stop_app`/`start_app`: every connection drops, durable queues come back from disk).
 * Afterwards every accepted order has ended, and no order is confirmed without a charge nor any charge
 * left without a confirmed order.
 */
const postgres = await postgresTarget();
const skip = postgres.skip || (await skipUnlessUp('rabbitmq'));

const LAMP = '10000000-0000-4000-8000-000000000002';
const NECKLACE = '10000000-0000-4000-8000-000000000004';

describe('Shop chaos: processes killed and RabbitMQ restarted while orders flow', { skip }, () => {
  let shop: DistributedShop;
  let vhost: Awaited<ReturnType<typeof temporaryVhost>>;
  let databaseUrl: string;
  const lines: string[] = [];

  before(async () => {
    vhost = await temporaryVhost(servers.rabbitmq.url);
    databaseUrl = await postgres.newDatabase();
    shop = await launchDistributed({
      transport: vhost.url,
      databaseUrl,
      port: await freePort(),
      logLevel: 'error',
      // One caller places every order here: the per-caller limit would refuse most of them.
      env: { RATE_LIMIT_PER_MINUTE: 'off', GRPC_PORT: '0' },
      output: (line) => {
        lines.push(line);
        if (lines.length > 200) lines.shift();
      },
    });
  });
  after(async () => {
    await shop?.stop();
    await postgres.cleanup();
    await vhost?.remove();
  });

  it('ends every order, each confirmed one charged and no charge without its order confirmed', async (t) => {
    const login = await requestJson(shop.url, 'POST', '/api/v1/login', {
      username: 'admin',
      password: 'admin-password',
    });
    const token = String(login.body.token);
    const accepted: string[] = [];
    // Orders neither held (the necklace) nor declined (the card): each must end confirmed.
    const plain = new Set<string>();
    let refused = 0;
    const refusals = new Map<string, number>();
    let acceptedBeforeRestart = -1;
    let streaming = true;
    const stream = (async () => {
      for (let i = 0; streaming; i++) {
        const held = i % 7 === 3;
        const declined = i % 5 === 4;
        const item = held ? { productId: NECKLACE, quantity: 1 } : { productId: LAMP, quantity: 1 + (i % 3) };
        const body = { items: [item], ...(declined ? { card: '4000000000000002' } : {}) };
        try {
          const placed = await requestJson(shop.url, 'POST', '/api/v1/orders', body, token);
          if (placed.status === 202) {
            accepted.push(String(placed.body.id));
            if (!held && !declined) plain.add(String(placed.body.id));
          } else {
            refused++;
            const why = `${placed.status} ${String((placed.body.error as { code?: unknown } | undefined)?.code)}`;
            refusals.set(why, (refusals.get(why) ?? 0) + 1);
          }
        } catch (error) {
          refused++;
          const why = (error as Error).name;
          refusals.set(why, (refusals.get(why) ?? 0) + 1);
        }
        await sleep(50);
      }
    })();
    try {
      for (const name of ['payments', 'rabbitmq', 'orders-1', 'payments']) {
        await sleep(1500);
        if (name === 'rabbitmq') {
          // Down for a second: every process loses its connection, publishes and replies in flight.
          await restartRabbitmq({ downMs: 1000 });
          // Counted from when the broker is back: orders accepted while it was stopping went through the old
          // connections. The nodes reconnect with backoff (the connection's up to 5 s, a consumer's up to
          // 10 s), and the broker may take a while to accept them: the chaos goes on once the Shop takes
          // orders again.
          acceptedBeforeRestart = accepted.length;
          const backAt = Date.now();
          await waitUntil(() => accepted.length >= acceptedBeforeRestart + 3, {
            timeoutMs: 30_000,
            intervalMs: 200,
            what: 'the Shop to accept orders again after the broker restart',
          });
          t.diagnostic(`orders accepted again ${Date.now() - backAt} ms after RabbitMQ was back`);
          continue;
        }
        await shop.kill(name);
        await sleep(1000);
        await shop.start(name);
      }
      // Orders keep coming until enough have gone through the reconnected processes: on a loaded machine the
      // kills after the restart can take most of the time left.
      await waitUntil(() => accepted.length >= acceptedBeforeRestart + 10, {
        timeoutMs: 30_000,
        intervalMs: 200,
        what: 'ten orders accepted after the broker restart',
      });
    } finally {
      streaming = false;
      await stream;
    }
    t.diagnostic(`${accepted.length} orders accepted, ${refused} refused while processes or the broker were down`);
    t.diagnostic(`refusals: ${JSON.stringify(Object.fromEntries(refusals))}`);
    assert.ok(accepted.length >= 20, `orders flowed (${accepted.length})`);
    const acceptedAfterRestart = accepted.slice(acceptedBeforeRestart);
    assert.ok(
      acceptedAfterRestart.length >= 10,
      `orders flowed after the broker restart (${acceptedAfterRestart.length})`,
    );

    const database = await Database.open(databaseUrl);
    try {
      const statuses = new Map<string, number>();
      const statusOf = new Map<string, string>();
      await waitUntil(
        async () => {
          statuses.clear();
          for (const id of accepted) {
            const order = await requestJson(shop.url, 'GET', `/api/v1/orders/${id}`, undefined, token);
            assert.equal(order.status, 200, JSON.stringify(order.body));
            const status = String(order.body.status);
            statusOf.set(id, status);
            statuses.set(status, (statuses.get(status) ?? 0) + 1);
          }
          return !statuses.has('pending');
        },
        { timeoutMs: 90_000, intervalMs: 1000, what: 'every accepted order to end' },
      ).catch((error) => {
        throw new Error(`${error.message}: ${JSON.stringify([...statuses])}\n${lines.slice(-30).join('\n')}`);
      });
      t.diagnostic(`orders: ${JSON.stringify(Object.fromEntries(statuses))}`);
      assert.ok((statuses.get('confirmed') ?? 0) > 0);
      // The reconnected processes carry orders through: orders placed after the restart get confirmed.
      const plainAfterRestart = acceptedAfterRestart.filter((id) => plain.has(id));
      const confirmedAfterRestart = plainAfterRestart.filter((id) => statusOf.get(id) === 'confirmed').length;
      t.diagnostic(
        `${confirmedAfterRestart} of ${plainAfterRestart.length} plain orders placed after the restart confirmed`,
      );
      assert.ok(confirmedAfterRestart > 0, 'orders placed after the broker restart are confirmed');
      await checkPaymentsMatchOrders(database);
    } finally {
      await database.close();
    }
  });
});
