import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type LivePrometheus,
  type PrometheusRuleGroup,
  servers,
  skipUnlessInstalled,
  skipUnlessUp,
  startPrometheus,
  waitUntil,
} from '@chassis/testing';
import { newsByType } from '../contracts/news.ts';
import { newsportalServiceNames } from '../src/services.ts';
import { type Newsportal, startNewsportal } from '../src/system.ts';
import { removeKeys, testKeyPrefix } from './redis-keys.ts';
import { describeRobot, request } from './robot.ts';

/**
 * The embedded default (memory transport, PGlite, the local Redis): every service on one node but
 * sports' query side, which runs on a second node on the same memory broker so that the robot can stop
 * it. The bad-input rules of issue 16 are checked on the same system.
 */
const skip = await skipUnlessUp('redis');
const keyPrefix = testKeyPrefix();
const env = (services: string) => ({
  CHASSIS_TRANSPORT: 'memory',
  SERVICES: services,
  REDIS_URL: servers.redis.url,
  REDIS_KEY_PREFIX: keyPrefix,
  GRPC_PORT: '0',
  OPS_PORT: 'off',
  LOG_LEVEL: 'silent',
});

let portal: Newsportal | undefined;
let sportsQuery: Newsportal | undefined;
const started = async () => {
  if (!portal) {
    const allButSportsQuery = newsportalServiceNames().filter((name) => name !== 'query-sports');
    portal = await startNewsportal({
      port: 0,
      databaseUrl: 'pglite://memory',
      // An ops port: the monitoring check below has Prometheus scrape it.
      env: { ...env(allButSportsQuery.join(',')), OPS_PORT: '0' },
    });
    sportsQuery = await startNewsportal({ port: false, databaseUrl: 'pglite://memory', env: env('query-sports') });
  }
  return portal;
};

after(async () => {
  await sportsQuery?.stop();
  await portal?.stop();
  if (!skip) await removeKeys(keyPrefix);
});

describeRobot(
  'embedded (memory transport, PGlite, local Redis; sports’ query side on a node of its own)',
  async () => ({
    url: (await started()).url!,
    grpcAddress: `127.0.0.1:${portal!.grpcPort}`,
    stopQuery: async (type) => {
      assert.equal(type, 'sports', 'only sports’ query side runs on a node of its own here');
      const running = sportsQuery;
      sportsQuery = undefined;
      await running?.stop();
    },
    // The file's `after` stops it: the bad-input checks below use the same system.
    stop: async () => undefined,
  }),
  { skip },
);

describe('News portal bad input: 400 with the field named, 404, 409, never 500', { skip }, () => {
  let url: string;
  const call = (method: string, path: string, options?: Parameters<typeof request>[3]) =>
    request(url, method, path, options);
  const invalid = async (method: string, path: string, field: string, body?: unknown) => {
    const answer = await call(method, path, body === undefined ? {} : { body });
    assert.equal(answer.status, 400, `${method} ${path}: ${JSON.stringify(answer.body)}`);
    assert.equal(answer.body.error?.code, 'VALIDATION');
    const fields = answer.body.error?.details?.fields?.map((f) => f.path) ?? [];
    assert.ok(fields.includes(field), `${method} ${path} names ${field}: ${JSON.stringify(fields)}`);
  };
  const news = { title: 'A title', content: 'Text', author: 'Desk', tags: ['one'] };

  before(async () => {
    url = (await started()).url!;
  });

  it('refuses a type other than famous, politics or sports', async () => {
    await invalid('GET', '/v1/news/weather/1', 'type');
    await invalid('GET', '/v1/news/weather/1/10', 'type');
    await invalid('POST', '/v1/news/weather', 'type', news);
    await invalid('PUT', '/v1/news/weather', 'type', { id: 1, version: 1, title: 'x' });
  });

  it('refuses a count or limit outside 1–10, and ids that are not positive integers', async () => {
    await invalid('GET', '/v1/users?count=0', 'count');
    await invalid('GET', '/v1/users?count=11', 'count');
    await invalid('GET', '/v1/users?count=ten', 'count');
    await invalid('GET', '/v1/news/all/1/11', 'limit');
    await invalid('GET', '/v1/news/famous/1/0', 'limit');
    await invalid('GET', '/v1/news/all/0/10', 'page');
    await invalid('GET', '/v1/users/abc', 'id');
    await invalid('GET', '/v1/news/famous/-4', 'id');
    await invalid('GET', '/v1/recommendation/user/1.5', 'id');
    const badCookie = await call('GET', '/v1/news/famous/1', { headers: { cookie: 'theme=dark; user_id=robot' } });
    assert.equal(badCookie.status, 400);
    assert.deepEqual(
      badCookie.body.error?.details?.fields?.map((f) => f.path),
      ['user_id'],
    );
    const negativeStart = await call('GET', '/v1/users?count=1&start=-5');
    assert.equal(negativeStart.status, 200);
    assert.equal(negativeStart.body.start, 0);
  });

  it('refuses a title over 200 characters, a tag over 50, and a missing field, naming it', async () => {
    await invalid('POST', '/v1/news/famous', 'title', { ...news, title: 'x'.repeat(201) });
    await invalid('POST', '/v1/news/famous', 'tags.0', { ...news, tags: ['y'.repeat(51)] });
    await invalid('POST', '/v1/news/famous', 'author', { title: 'A', content: 'B' });
    await invalid('PUT', '/v1/news/famous', 'version', { id: 1, title: 'x' });
    await invalid('PUT', '/v1/news/famous', 'title', { id: 1, version: 1, title: 'x'.repeat(201) });
    await invalid('POST', '/v1/users', 'email', { name: 'N', email: 'not-an-email', password: 'long-enough' });
    await invalid('POST', '/v1/users', 'password', { name: 'N', email: 'n@example.com', password: 'short' });
    await invalid('PUT', '/v1/users/1', 'name', {});
  });

  it('answers 404 for an unknown id', async () => {
    for (const path of ['/v1/users/999999', '/v1/news/famous/999999', '/v1/recommendation/user/999999']) {
      const answer = await call('GET', path);
      assert.equal(answer.status, 404, `${path}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error?.code, 'NOT_FOUND');
    }
    assert.equal((await call('PUT', '/v1/news/famous', { body: { id: 999999, version: 1, title: 'x' } })).status, 404);
    assert.equal((await call('PUT', '/v1/users/999999', { body: { name: 'x' } })).status, 404);
    assert.equal((await call('DELETE', '/v1/users/999999')).status, 404);
  });

  it('answers 409 for a duplicate e-mail, also once the first user is in the database', async () => {
    const email = `${keyPrefix.replace(/[^a-z0-9-]/g, '')}@example.com`;
    const user = { name: 'Twin', email, password: 'twin-password' };
    const first = await call('POST', '/v1/users', { body: user });
    assert.equal(first.status, 201);
    const second = await call('POST', '/v1/users', { body: { ...user, email: email.toUpperCase() } });
    assert.equal(second.status, 409);
    assert.equal(second.body.error?.code, 'DUPLICATE_EMAIL');
    assert.deepEqual(
      second.body.error?.details?.fields?.map((f) => f.path),
      ['email'],
    );
  });

  it('updates and deletes a user through the write-behind queues', async () => {
    const created = await call('POST', '/v1/users', {
      body: { name: 'Short-lived', email: `short-${keyPrefix.slice(-9, -1)}@example.com`, password: 'password-1' },
    });
    const id = created.body.id as number;
    const renamed = await call('PUT', `/v1/users/${id}`, { body: { name: 'Renamed' } });
    assert.equal(renamed.status, 200);
    assert.equal(renamed.body.name, 'Renamed');
    assert.equal((await call('GET', `/v1/users/${id}`)).body.name, 'Renamed');
    assert.equal((await call('DELETE', `/v1/users/${id}`)).status, 200);
    assert.equal((await call('GET', `/v1/users/${id}`)).status, 404);
  });

  it('publishes an item as its next version (the RPC publish_news), refusing a stale version', async () => {
    const node = (await started()).node;
    const famous = newsByType.famous;
    const added = await node.call(famous.addNews, { title: 'To publish', content: 'x', author: 'Desk' });
    assert.equal(added.published_at, null);
    const published = await node.call(famous.publishNews, { id: added.id, version: 1 });
    assert.equal(published.version, 2);
    assert.ok(published.published_at !== null && Date.parse(published.published_at) > 0);
    await assert.rejects(node.call(famous.publishNews, { id: added.id, version: 1 }), { code: 'CONFLICT' });
  });
});

describe('recommendations walk the users–labels graph (a recursive query)', { skip }, () => {
  it('lists a user’s labels, a label’s readers, and the labels to recommend three hops away, ranked', async () => {
    const url = (await started()).url!;
    const suffix = keyPrefix.slice(-9, -1);
    // Labels of their own, so that other tests' readings do not reach them.
    const label = (name: string) => `walk-${name}-${suffix}`;
    const [x, y, z, w, q] = [label('x'), label('y'), label('z'), label('w'), label('q')];
    const user = async (name: string) => {
      const created = await request(url, 'POST', '/v1/users', {
        body: { name, email: `${name.toLowerCase()}-${suffix}@example.com`, password: 'password-1' },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body.id as number;
    };
    const [ann, ben, cat, dan, eve] = [
      await user('Ann'),
      await user('Ben'),
      await user('Cat'),
      await user('Dan'),
      await user('Eve'),
    ];
    const read = async (reader: number, tags: string[]) => {
      const item = await request(url, 'POST', '/v1/news/politics', {
        body: { title: tags.join(' '), content: 'x', author: 'Desk', tags },
      });
      const id = (item.body.news as { id: number }).id;
      const answer = await request(url, 'GET', `/v1/news/politics/${id}`, { headers: { cookie: `user_id=${reader}` } });
      assert.equal(answer.status, 200);
    };
    // Ann reads x and y; Ben y and z; Cat y, z and w; Dan only q. The graph has cycles (Ann–y–Ben–z–Cat–y).
    await read(ann, [x, y]);
    await read(ben, [y, z]);
    await read(cat, [y, z, w]);
    await read(dan, [q]);
    const labels = async (id: number) =>
      ((await request(url, 'GET', `/v1/recommendation/user/${id}`)).body as unknown as { id: string }[]).map(
        (label) => label.id,
      );
    await waitUntil(async () => (await labels(cat)).length === 3 && (await labels(dan)).length === 1, {
      timeoutMs: 5000,
      what: 'the readings to reach the graph',
    });
    assert.deepEqual(await labels(ann), [x, y].sort());
    const readersOfY = (await request(url, 'GET', `/v1/recommendation/label/${y}`)).body as unknown as { id: number }[];
    assert.deepEqual(
      readersOfY.map((reader) => reader.id),
      [ann, ben, cat],
    );
    // For Ann: z (read by Ben and Cat, who share y with her) before w (Cat only); not her own, not Dan's q.
    const related = await request(url, 'GET', `/v1/recommendation/user/${ann}/related`);
    assert.equal(related.status, 200, JSON.stringify(related.body));
    assert.deepEqual(related.body, [
      { id: z, readers: 2 },
      { id: w, readers: 1 },
    ]);
    // For Ben: x (Ann) and w (Cat), one co-reader each, by name.
    assert.deepEqual(
      (await request(url, 'GET', `/v1/recommendation/user/${ben}/related`)).body,
      [
        { id: w, readers: 1 },
        { id: x, readers: 1 },
      ].sort((a, b) => a.id.localeCompare(b.id)),
    );
    // Dan shares no label: nothing to recommend. Eve read nothing: nothing either. An unknown user: 404.
    assert.deepEqual((await request(url, 'GET', `/v1/recommendation/user/${dan}/related`)).body, []);
    assert.deepEqual((await request(url, 'GET', `/v1/recommendation/user/${eve}/related`)).body, []);
    const unknown = await request(url, 'GET', '/v1/recommendation/user/999999/related');
    assert.equal(unknown.status, 404);
    const invalid = await request(url, 'GET', '/v1/recommendation/user/zero/related');
    assert.equal(invalid.status, 400);
    assert.deepEqual((await request(url, 'GET', `/v1/recommendation/label/walk-none-${suffix}`)).body, []);
  });
});

/**
 * deploy/monitoring against this system: a real Prometheus scrapes its node each second, with the rule
 * files loaded, while users are created and read and news read by a user (recommendations then ask users
 * over gRPC). Every panel of the News portal dashboard must return data, every rule evaluate.
 */
const monitoringDir = fileURLToPath(new URL('../../../deploy/monitoring/', import.meta.url));
describe('the News portal dashboard and alert rules against a real Prometheus scraping this system', {
  skip: skip || skipUnlessInstalled('prometheus', 'Debian: apt-get install prometheus'),
  timeout: 60_000,
}, () => {
  let prometheus: LivePrometheus | undefined;
  let traffic: Promise<void> | undefined;
  let stopTraffic = false;
  const logs: string[] = [];

  before(async () => {
    const { url, node } = await started();
    prometheus = await startPrometheus({
      targets: [{ instance: 'portal', group: 'edge', port: node.opsPort! }],
      ruleFiles: [`${join(monitoringDir, 'prometheus', 'rules')}/*.yml`],
      log: (line) => logs.push(line),
    });
    const created = await request(url!, 'POST', '/v1/users', {
      body: { name: 'Watched', email: `watched-${keyPrefix.slice(-9, -1)}@example.com`, password: 'password-1' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const item = await request(url!, 'POST', '/v1/news/famous', {
      body: { title: 'Watched', content: 'x', author: 'Desk', tags: ['monitoring'] },
    });
    const itemId = (item.body.news as { id: number }).id;
    // Reads (hits once cached), a reading that recommendations look up over gRPC, a 404 and a 400.
    traffic = (async () => {
      while (!stopTraffic) {
        await request(url!, 'GET', `/v1/users/${created.body.id}`);
        await request(url!, 'GET', `/v1/news/famous/${itemId}`, { headers: { cookie: `user_id=${created.body.id}` } });
        await request(url!, 'GET', '/v1/users/999999');
        await request(url!, 'GET', '/v1/news/nonsense/1/10');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
  });

  after(async () => {
    stopTraffic = true;
    await traffic?.catch(() => undefined);
    await prometheus?.stop();
  });

  it('every panel of the News portal dashboard has data', async () => {
    const dashboard = JSON.parse(
      readFileSync(join(monitoringDir, 'grafana', 'dashboards', 'newsportal.json'), 'utf8'),
    ) as { panels: { title: string; targets?: { refId: string; expr: string }[] }[] };
    const queries = dashboard.panels.flatMap((panel) =>
      (panel.targets ?? []).map((target) => ({
        where: `${panel.title} › ${target.refId}`,
        // As Grafana sends it: the rate window it would pick for a 1 s scrape.
        expr: target.expr.replaceAll('$__rate_interval', '1m'),
      })),
    );
    assert.ok(queries.length >= 15, `${queries.length} queries`);
    const missing = await prometheus!.withoutData(queries);
    assert.deepEqual(missing, [], `panels without data:\n${missing.join('\n')}\n${logs.slice(-10).join('\n')}`);
  });

  it('Prometheus evaluates every rule, the News portal’s among them, without error', async () => {
    let groups: PrometheusRuleGroup[] = [];
    await waitUntil(
      async () => {
        groups = await prometheus!.ruleGroups();
        return groups.some((group) => group.name === 'newsportal-users');
      },
      { timeoutMs: 10_000, what: 'the rules to load' },
    );
    const rules = groups.flatMap((group) => group.rules);
    assert.ok(rules.some((rule) => rule.name === 'UsersWritesNotPersisted'));
    for (const rule of rules) assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);
  });
});
