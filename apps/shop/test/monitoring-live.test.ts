import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  freePort,
  type LivePrometheus,
  type PrometheusRule,
  postgresTarget,
  requestJson,
  servers,
  skipUnlessInstalled,
  skipUnlessUp,
  startPrometheus,
  waitUntil,
} from '@chassis/testing';
import { distributedTopology } from '../src/launcher.ts';
import { type Shop, startShop } from '../src/system.ts';
import { chassisRulesDir, loadedRuleCounts, shopDashboardQueries, shopRulesDir } from './monitoring.ts';
import { temporaryVhost } from './rabbitmq-vhost.ts';

/**
 * The Shop's dashboard and rules (deploy/monitoring/shop) against the real thing: the nodes of the
 * distributed start over RabbitMQ and PostgreSQL, each serving /metrics on its ops port, a real
 * Prometheus scraping them each second with the chassis's and the Shop's rules loaded, and orders placed
 * through the gateway (plain, held, declined, refused). Every panel's query must return data; every rule
 * must evaluate.
 */

const postgres = await postgresTarget();
const skip =
  postgres.skip ||
  (await skipUnlessUp('rabbitmq')) ||
  skipUnlessInstalled('prometheus', 'Debian: apt-get install prometheus');

const LAMP = '10000000-0000-4000-8000-000000000002';
const NECKLACE = '10000000-0000-4000-8000-000000000004';

describe('a real Prometheus scraping the distributed Shop: every dashboard panel has data, every rule evaluates', {
  skip,
  timeout: 120_000,
}, () => {
  const logs: string[] = [];
  const nodes: Shop[] = [];
  let vhost: Awaited<ReturnType<typeof temporaryVhost>> | undefined;
  let prometheus: LivePrometheus | undefined;
  let placing: Promise<void> | undefined;
  let stopPlacing = false;
  const query = (expr: string) => prometheus!.query(expr);

  before(
    async () => {
      // A set-up that stalls (a connection retried on unref'd timers) fails here by the hook's timeout, with
      // the logs, instead of Node cancelling the file when nothing else keeps the event loop alive.
      const keepAlive = setInterval(() => undefined, 1000);
      try {
        await setUp();
      } catch (error) {
        throw new Error(`${(error as Error).message}\n${logs.slice(-20).join('\n')}`, { cause: error });
      } finally {
        clearInterval(keepAlive);
      }
    },
    { timeout: 60_000 },
  );

  async function setUp(): Promise<void> {
    vhost = await temporaryVhost(servers.rabbitmq.url);
    const databaseUrl = await postgres.newDatabase();
    // The edge last, as the launcher and Compose start it.
    const topology = distributedTopology(0).sort((a, b) => Number(a.port !== undefined) - Number(b.port !== undefined));
    const opsPorts = new Map<string, number>();
    for (const spec of topology) opsPorts.set(spec.name, await freePort());
    prometheus = await startPrometheus({
      targets: [...opsPorts].map(([instance, port]) => ({ instance, port })),
      ruleFiles: [`${chassisRulesDir}/*.yml`, `${shopRulesDir}/shop.yml`],
      log: (line) => logs.push(line),
    });
    for (const spec of topology) {
      logs.push(`[test] starting ${spec.name}`);
      nodes.push(
        await startShop({
          port: spec.port === undefined ? false : 0,
          databaseUrl,
          rateLimitPerMinute: false,
          env: {
            CHASSIS_TRANSPORT: vhost.url,
            SERVICES: spec.services,
            NODE_ID: spec.name,
            OPS_PORT: String(opsPorts.get(spec.name)),
            GRPC_PORT: '0',
            LOG_LEVEL: 'silent',
          },
        }),
      );
    }
    const url = nodes.at(-1)!.url!;
    const login = await requestJson(url, 'POST', '/api/v1/login', { username: 'admin', password: 'admin-password' });
    const token = String(login.body.token);
    // Orders keep coming while Prometheus scrapes, so that every rate has a rise to see: plain ones
    // (confirmed), one over 10,000.00 (held), a declined card (canceled, voided) and an empty one (400).
    placing = (async () => {
      for (let round = 0; !stopPlacing; round++) {
        const order = (body: unknown) => requestJson(url, 'POST', '/api/v1/orders', body, token).catch(() => undefined);
        await order({ items: [{ productId: LAMP, quantity: 1 }] });
        if (round % 4 === 0) {
          await order({ items: [{ productId: NECKLACE, quantity: 1 }] });
          await order({ items: [{ productId: LAMP, quantity: 1 }], card: '4000000000000002' });
          await order({ items: [] });
          await requestJson(url, 'GET', '/api/v1/products?q=lamp').catch(() => undefined);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    await waitUntil(async () => (await query('count(up{job="chassis"} == 1)')).data?.result[0] !== undefined, {
      timeoutMs: 20_000,
      intervalMs: 500,
      what: 'Prometheus to scrape the Shop processes',
    });
  }

  after(async () => {
    stopPlacing = true;
    await placing?.catch(() => undefined);
    for (const node of nodes.reverse()) await node.stop().catch(() => undefined);
    await prometheus?.stop();
    await postgres.cleanup();
    await vhost?.remove().catch(() => undefined);
  });

  it('every process is scraped and up', async () => {
    await waitUntil(async () => (await query('up{job="chassis"} == 1')).data?.result.length === 4, {
      timeoutMs: 20_000,
      intervalMs: 500,
      what: 'the four processes to be up',
    });
  });

  it('every panel of the Shop’s dashboard returns data', async () => {
    const missing = await prometheus!.withoutData(shopDashboardQueries(), {
      rewrite: (expr) => expr.replaceAll('$__rate_interval', '10s'),
    });
    assert.deepEqual(missing, [], `panels without data:\n${missing.join('\n')}\n${logs.slice(-20).join('\n')}`);
    // The numbers are the tables': orders confirmed and payments held by now.
    const confirmed = await query('max(shop_orders{status="confirmed"}) > 0');
    assert.equal(confirmed.data?.result.length, 1);
    const held = await query('max(shop_payments{status="held"}) > 0');
    assert.equal(held.data?.result.length, 1);
  });

  it('Prometheus evaluates every rule, the Shop’s with the chassis’s, without error', async () => {
    let rules: PrometheusRule[] = [];
    await waitUntil(
      async () => {
        rules = (await prometheus!.ruleGroups()).flatMap((group) => group.rules);
        return rules.length > 0 && rules.every((rule) => !rule.lastEvaluation.startsWith('0001'));
      },
      { timeoutMs: 10_000, intervalMs: 500, what: 'every rule to be evaluated' },
    );
    assert.equal(
      rules.length,
      [...loadedRuleCounts().values()].reduce((sum, n) => sum + n, 0),
    );
    for (const name of ['ShopOrdersNotConcluding', 'ShopOrdersCanceledRatioHigh', 'ShopPaymentsHeldForReview']) {
      assert.ok(
        rules.some((rule) => rule.name === name),
        name,
      );
    }
    for (const rule of rules) assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);
  });
});
