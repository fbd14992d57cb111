import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitUntil } from '@chassis/testing';
import { credentials, loadPackageDefinition, type ServiceError, status } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { NEWS_TYPES, type NewsType } from '../contracts/common.ts';
import { USER_DATA_PROTO } from '../services/users/grpc.ts';

interface UserData {
  id: number;
  name: string;
  email: string;
}
type GetUser = (
  request: { id: number },
  options: { deadline: Date },
  done: (error: ServiceError | null, response?: UserData) => void,
) => void;

/** `GetUserData.GetUser` through a plain @grpc/grpc-js client, made from the book's .proto: no chassis code. */
async function getUserOverGrpc(address: string, id: number): Promise<UserData> {
  const definition = loadPackageDefinition(loadSync(fileURLToPath(USER_DATA_PROTO), { keepCase: true }));
  const Client = definition.GetUserData as unknown as new (
    address: string,
    creds: ReturnType<typeof credentials.createInsecure>,
  ) => { GetUser: GetUser; close(): void };
  const client = new Client(address, credentials.createInsecure());
  try {
    return await new Promise<UserData>((resolve, reject) => {
      client.GetUser({ id }, { deadline: new Date(Date.now() + 5000) }, (error, response) =>
        error ? reject(error) : resolve(response!),
      );
    });
  } finally {
    client.close();
  }
}

/** A running News portal, however it is deployed, as the book's TestRobot sees it. */
export interface PortalUnderTest {
  /** The gateway's base URL. */
  url: string;
  /** Users' gRPC `GetUserData`, `host:port`. */
  grpcAddress: string;
  /** Takes one type's query service down (no instance serves it), the rest running on. */
  stopQuery(type: NewsType): Promise<void>;
  stop(): Promise<void>;
}

export type Answer = Record<string, unknown> & {
  error?: { code: string; message: string; details?: { fields?: { path: string }[] } };
};

export async function request(
  url: string,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Answer }> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Answer) : {} };
}

interface NewsBody {
  id: number;
  version: number;
  title: string;
  tags: string[];
  news_type: NewsType;
}

/**
 * The book's end-to-end flow (its "TestRobot") through the gateway over HTTP: create a user, one item
 * per type, read each as that user, see the recommendations, update an item, merge the types, and see
 * the merged list go partial with one query service stopped.
 */
export function describeRobot(
  topology: string,
  start: () => Promise<PortalUnderTest>,
  options: { skip?: false | string } = {},
) {
  describe(`News portal TestRobot over HTTP: ${topology}`, { skip: options.skip }, () => {
    let portal: PortalUnderTest;
    const call = (method: string, path: string, opts?: Parameters<typeof request>[3]) =>
      request(portal.url, method, path, opts);
    const run = randomUUID().slice(0, 8);
    let userId: number;
    const items = new Map<NewsType, NewsBody>();

    before(async () => {
      portal = await start();
    });
    after(async () => {
      await portal?.stop();
    });

    it('creates a user, whose password is never returned', async () => {
      const created = await call('POST', '/v1/users', {
        body: { name: 'Test Robot', email: `robot-${run}@example.com`, password: 'robot-password' },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.deepEqual(Object.keys(created.body).sort(), ['email', 'id', 'name']);
      userId = created.body.id as number;
      const read = await call('GET', `/v1/users/${userId}`);
      assert.equal(read.status, 200);
      assert.equal(read.body.email, `robot-${run}@example.com`);
      assert.equal(read.body.password_hash, undefined);
    });

    it('gRPC GetUserData.GetUser through a real client returns the user created over HTTP; a missing id is NOT_FOUND', async () => {
      const user = await getUserOverGrpc(portal.grpcAddress, userId);
      assert.deepEqual(user, { id: userId, name: 'Test Robot', email: `robot-${run}@example.com` });
      await assert.rejects(getUserOverGrpc(portal.grpcAddress, 2_000_000_000), (error: ServiceError) => {
        assert.equal(error.code, status.NOT_FOUND);
        return true;
      });
      await assert.rejects(getUserOverGrpc(portal.grpcAddress, 0), (error: ServiceError) => {
        assert.equal(error.code, status.INVALID_ARGUMENT);
        return true;
      });
    });

    it('creates one news item per type, at version 1', async () => {
      for (const type of NEWS_TYPES) {
        const created = await call('POST', `/v1/news/${type}`, {
          body: {
            title: `${type} ${run}`,
            content: `About ${type}.`,
            author: 'Robot',
            tags: [`${type}-${run}`, 'robot'],
          },
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        assert.equal(created.body.status, 'success');
        const news = created.body.news as NewsBody;
        assert.equal(news.version, 1);
        assert.equal(news.news_type, type);
        items.set(type, news);
      }
    });

    it('reads each item as the user, and within two seconds recommends the items’ labels', async () => {
      for (const [type, news] of items) {
        // The read model follows the command side by an event: wait for it to have the item.
        let read = await call('GET', `/v1/news/${type}/${news.id}`, { headers: { cookie: `user_id=${userId}` } });
        await waitUntil(
          async () => {
            if (read.status === 200) return true;
            read = await call('GET', `/v1/news/${type}/${news.id}`, { headers: { cookie: `user_id=${userId}` } });
            return read.status === 200;
          },
          { timeoutMs: 5000, what: `${type} news ${news.id} on the query side` },
        );
        assert.equal(read.body.status, 'success');
        assert.equal((read.body.news as NewsBody).title, `${type} ${run}`);
      }
      const expected = [...NEWS_TYPES.map((type) => `${type}-${run}`), 'robot'].sort();
      let labels: string[] = [];
      await waitUntil(
        async () => {
          const answer = await call('GET', `/v1/recommendation/user/${userId}`);
          if (answer.status !== 200) return false;
          labels = (answer.body as unknown as { id: string }[]).map((label) => label.id).sort();
          return expected.every((label) => labels.includes(label));
        },
        { timeoutMs: 2000, intervalMs: 50, what: 'the recommendations of the items read' },
      );
      assert.deepEqual(labels, expected);
      const readers = await call('GET', `/v1/recommendation/label/sports-${run}`);
      assert.equal(readers.status, 200);
      assert.deepEqual(readers.body, [{ id: userId, name: 'Test Robot', email: `robot-${run}@example.com` }]);
    });

    it('updates an item to version 2, which the read side shows; the stale version is a 409', async () => {
      const news = items.get('politics')!;
      const updated = await call('PUT', '/v1/news/politics', {
        body: { id: news.id, version: 1, title: `politics ${run}, updated` },
      });
      assert.equal(updated.status, 200, JSON.stringify(updated.body));
      assert.equal((updated.body.news as NewsBody).version, 2);
      await waitUntil(
        async () => {
          const read = await call('GET', `/v1/news/politics/${news.id}`);
          return (read.body.news as NewsBody | undefined)?.version === 2;
        },
        { timeoutMs: 5000, what: 'version 2 on the read side' },
      );
      const read = await call('GET', `/v1/news/politics/${news.id}`);
      assert.equal((read.body.news as NewsBody).title, `politics ${run}, updated`);
      const stale = await call('PUT', '/v1/news/politics', { body: { id: news.id, version: 1, title: 'late' } });
      assert.equal(stale.status, 409);
      assert.equal(stale.body.error?.code, 'CONFLICT');
    });

    it('merges the three types in /v1/news/all', async () => {
      const all = await call('GET', '/v1/news/all/1/10');
      assert.equal(all.status, 200, JSON.stringify(all.body));
      assert.equal(all.body.status, 'success');
      const mine = (all.body.news as NewsBody[]).filter((news) => news.title.includes(run));
      assert.deepEqual(mine.map((news) => news.news_type).sort(), [...NEWS_TYPES].sort());
    });

    it('answers a partial merge, naming the type, with one query service stopped', async () => {
      await portal.stopQuery('sports');
      const all = await call('GET', '/v1/news/all/1/10');
      assert.equal(all.status, 200, JSON.stringify(all.body));
      assert.equal(all.body.status, 'partial');
      assert.deepEqual(
        (all.body.missing as { type: string }[]).map((part) => part.type),
        ['sports'],
      );
      const mine = (all.body.news as NewsBody[]).filter((news) => news.title.includes(run));
      assert.deepEqual(mine.map((news) => news.news_type).sort(), ['famous', 'politics']);
    });
  });
}
