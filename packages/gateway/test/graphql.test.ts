import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChassisError, type ChassisNode, MemoryBroker, type OutputOf, signToken } from '@chassis/core';
import { errorBodySchema, type GatewayOptions, type GraphqlResolvers, graphqlEndpoint } from '@chassis/gateway';
import {
  type BankApi,
  getPrice,
  listAccounts,
  listHoldings,
  listOrders,
  startBankApi,
  startPortfolioNode,
  token,
} from './bank-api.ts';

// SimpleBank's schema after the book's listing 3.1, with a public `price` field and one that breaks.
const schema = /* GraphQL */ `
  type Query {
    accounts: [Account]
    account(id: ID!): Account
    price(symbol: String!): Price
    broken: String
  }
  type Account {
    id: ID!
    name: String!
    cash: String
    currentHoldings: [Holding]
    orders: [Order]
  }
  type Holding {
    symbol: String!
    quantity: Int!
    price: String
  }
  type Order {
    id: ID!
    symbol: String!
    quantity: Int!
    status: String!
  }
  type Price {
    symbol: String!
    price: String!
  }
`;

type Account = OutputOf<typeof listAccounts>[number];

const resolvers: GraphqlResolvers = {
  Query: {
    accounts: (_root, _args, ctx) => {
      ctx.requireUser();
      return ctx.call(listAccounts, {});
    },
    account: async (_root, args: { id: string }, ctx) => {
      ctx.requireUser();
      const account = (await ctx.call(listAccounts, {})).find((a) => a.id === args.id);
      if (!account) throw new ChassisError('NOT_FOUND', `You have no account ${args.id}`);
      return account;
    },
    price: (_root, args: { symbol: string }, ctx) => ctx.call(getPrice, { symbol: args.symbol }),
    broken: () => {
      throw new Error('connection refused by postgres://admin:hunter2@db');
    },
  },
  Account: {
    currentHoldings: async (account: Account, _args, ctx) => {
      const holdings = await ctx.call(listHoldings, { accountId: account.id });
      return Promise.all(
        holdings.map(async (holding) => ({
          ...holding,
          price: (await ctx.call(getPrice, { symbol: holding.symbol })).price,
        })),
      );
    },
    orders: (account: Account, _args, ctx) => ctx.call(listOrders, { accountId: account.id }),
  },
};

interface GraphqlAnswer {
  data?: Record<string, unknown> | null;
  errors?: { message: string; path?: unknown[]; locations?: unknown[]; extensions?: Record<string, unknown> }[];
}

async function startGraphqlBank(overrides: Partial<GatewayOptions> = {}) {
  const broker = new MemoryBroker();
  const api = await startBankApi({ register: graphqlEndpoint({ schema, resolvers }), ...overrides }, broker);
  const portfolio = await startPortfolioNode(api.state, broker);
  return { api, portfolio };
}

describe('GraphQL endpoint', () => {
  let api: BankApi;
  let portfolio: ChassisNode;
  before(async () => {
    ({ api, portfolio } = await startGraphqlBank());
  });
  after(async () => {
    await portfolio.stop();
    await api.close();
  });

  const query = (body: unknown, authorization?: string) =>
    api.gateway.app.inject({
      method: 'POST',
      url: '/graphql',
      headers: authorization ? { authorization } : {},
      payload: body as Record<string, unknown>,
    });
  const asAlice = async () => `Bearer ${await token.alice()}`;

  it('resolves a nested query with a valid token: each field an action called as the caller', async () => {
    const sold = await api.gateway.app.inject({
      method: 'POST',
      url: '/shares/sell',
      headers: { authorization: await asAlice() },
      payload: { accountId: '101', symbol: 'BHP', quantity: 10 },
    });
    assert.equal(sold.statusCode, 202, sold.body);

    const response = await query(
      {
        query: `query Overview($id: ID!) {
          accounts { id name currentHoldings { symbol quantity price } orders { id symbol quantity status } }
          account(id: $id) { name }
        }`,
        variables: { id: '101' },
      },
      await asAlice(),
    );
    assert.equal(response.statusCode, 200, response.body);
    const body: GraphqlAnswer = response.json();
    assert.equal(body.errors, undefined, response.body);
    assert.deepEqual(body.data, {
      accounts: [
        {
          id: '101',
          name: 'Alice ISA',
          currentHoldings: [
            { symbol: 'BHP', quantity: 990, price: '91.72' },
            { symbol: 'GOOG', quantity: 103, price: '34.21' },
          ],
          orders: [{ id: sold.json().orderId, symbol: 'BHP', quantity: 10, status: 'created' }],
        },
      ],
      account: { name: 'Alice ISA' },
    });
    assert.equal(api.state.users.at(-1), 'alice', 'the service verified the caller’s token itself');
    assert.ok(response.headers['x-request-id']);

    const viaGet = await api.gateway.app.inject({
      method: 'GET',
      url: `/graphql?query=${encodeURIComponent('{ price(symbol: "GOOG") { price } }')}`,
    });
    assert.equal(viaGet.statusCode, 200, viaGet.body);
    assert.deepEqual(viaGet.json(), { data: { price: { price: '34.21' } } });
  });

  it('no token: a protected field fails with UNAUTHENTICATED, public fields still resolve', async () => {
    const response = await query({ query: '{ accounts { id } price(symbol: "BHP") { price } }' });
    assert.equal(response.statusCode, 200, response.body);
    const body: GraphqlAnswer = response.json();
    assert.deepEqual(body.data, { accounts: null, price: { price: '91.72' } });
    assert.equal(body.errors?.length, 1);
    assert.deepEqual(body.errors?.[0]?.path, ['accounts']);
    assert.equal(body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  });

  it('a token that does not verify refuses the request: 401, UNAUTHENTICATED, in GraphQL’s shape', async () => {
    const forged = await signToken('not-the-bank-secret-but-long-enough!', { sub: 'alice', roles: ['customer'] });
    const response = await query({ query: '{ price(symbol: "BHP") { price } }' }, `Bearer ${forged}`);
    assert.equal(response.statusCode, 401, response.body);
    assert.equal(response.headers['www-authenticate'], 'Bearer');
    const body: GraphqlAnswer = response.json();
    assert.equal(body.data, undefined, 'nothing was executed');
    assert.equal(body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
    assert.match(body.errors?.[0]?.message ?? '', /signature/);
  });

  it('errors of the actions keep their code and details in extensions, never a stack', async () => {
    const response = await query(
      { query: '{ price(symbol: "bhp") { price } account(id: "102") { name } broken }' },
      await asAlice(),
    );
    assert.equal(response.statusCode, 200, response.body);
    const body: GraphqlAnswer = response.json();
    assert.deepEqual(body.data, { price: null, account: null, broken: null });
    const byField = new Map(body.errors?.map((error) => [error.path?.[0], error]));

    const invalid = byField.get('price');
    assert.equal(invalid?.extensions?.code, 'VALIDATION');
    const details = invalid?.extensions?.details as { fields: { path: string }[] } | undefined;
    const fields = details?.fields.map((f) => f.path);
    assert.deepEqual(fields, ['symbol']);
    assert.equal(byField.get('account')?.extensions?.code, 'NOT_FOUND');

    const internal = byField.get('broken');
    assert.equal(internal?.extensions?.code, 'INTERNAL');
    assert.doesNotMatch(internal?.message ?? '', /hunter2/, 'an internal error’s message is not shown');
    assert.match(internal?.message ?? '', new RegExp(String(response.headers['x-request-id'])));
    assert.doesNotMatch(response.body, /stack|exception|hunter2|\.ts:\d+/);
  });

  it('a query that does not parse or validate is a 400 naming the problem; so is a body that is not JSON', async () => {
    const syntax = await query({ query: '{ accounts { id ' }, await asAlice());
    assert.equal(syntax.statusCode, 400, syntax.body);
    const syntaxBody: GraphqlAnswer = syntax.json();
    assert.equal(syntaxBody.errors?.[0]?.extensions?.code, 'VALIDATION');
    assert.match(syntaxBody.errors?.[0]?.message ?? '', /Syntax Error/);
    assert.ok(syntaxBody.errors?.[0]?.locations, 'where in the query');

    const unknownField = await query({ query: '{ accounts { iban } }' }, await asAlice());
    assert.equal(unknownField.statusCode, 400, unknownField.body);
    assert.match((unknownField.json() as GraphqlAnswer).errors?.[0]?.message ?? '', /iban/);

    const missingVariable = await query({ query: 'query ($id: ID!) { account(id: $id) { name } }' });
    assert.equal(missingVariable.statusCode, 400, missingVariable.body);
    assert.equal((missingVariable.json() as GraphqlAnswer).errors?.[0]?.extensions?.code, 'VALIDATION');

    const noQuery = await query({});
    assert.equal(noQuery.statusCode, 400, noQuery.body);

    const notJson = await api.gateway.app.inject({
      method: 'POST',
      url: '/graphql',
      headers: { 'content-type': 'application/json' },
      payload: '{"query": "{ accounts { id } ',
    });
    assert.equal(notJson.statusCode, 400, notJson.body);
    assert.equal(errorBodySchema.parse(notJson.json()).error.code, 'VALIDATION');

    const text = await api.gateway.app.inject({
      method: 'POST',
      url: '/graphql',
      headers: { 'content-type': 'text/plain' },
      payload: '{ accounts { id } }',
    });
    assert.equal(text.statusCode, 415, text.body);
  });
});

describe('GraphQL endpoint: depth and methods', () => {
  it('refuses a query deeper than maxDepth, and a mutation by GET; GET takes variables as JSON', async () => {
    const broker = new MemoryBroker();
    const mutable = `${schema} type Mutation { noop: String }`;
    const api = await startBankApi({ register: graphqlEndpoint({ schema: mutable, resolvers, maxDepth: 2 }) }, broker);
    const portfolio = await startPortfolioNode(api.state, broker);
    try {
      const authorization = `Bearer ${await token.alice()}`;
      const post = (query: string) =>
        api.gateway.app.inject({ method: 'POST', url: '/graphql', headers: { authorization }, payload: { query } });
      const shallow = await post('{ accounts { id name } }');
      assert.equal(shallow.statusCode, 200, shallow.body);
      const deep = await post('query Deep { accounts { orders { id } } }');
      assert.equal(deep.statusCode, 400, deep.body);
      const deepBody: GraphqlAnswer = deep.json();
      assert.equal(deepBody.errors?.[0]?.extensions?.code, 'VALIDATION');
      assert.match(deepBody.errors?.[0]?.message ?? '', /Deep query is 3 fields deep.*limit of 2/);
      const viaFragment = await post('{ accounts { ...A } } fragment A on Account { orders { id } }');
      assert.equal(viaFragment.statusCode, 400, 'a fragment counts as the fields it stands for');

      const mutation = await api.gateway.app.inject({
        method: 'GET',
        url: `/graphql?query=${encodeURIComponent('mutation { noop }')}`,
      });
      assert.equal(mutation.statusCode, 405, mutation.body);

      const variables = encodeURIComponent(JSON.stringify({ symbol: 'BHP' }));
      const query = encodeURIComponent('query ($symbol: String!) { price(symbol: $symbol) { price } }');
      const viaGet = await api.gateway.app.inject({
        method: 'GET',
        url: `/graphql?query=${query}&variables=${variables}`,
      });
      assert.equal(viaGet.statusCode, 200, viaGet.body);
      assert.deepEqual(viaGet.json(), { data: { price: { price: '91.72' } } });
    } finally {
      await portfolio.stop();
      await api.close();
    }
  });
});

describe('GraphQL endpoint: rate limits', () => {
  it('counts GraphQL requests per caller and answers 429 in the gateway’s shape with Retry-After', async () => {
    const { api, portfolio } = await startGraphqlBank({ rateLimit: { max: 2, timeWindowMs: 60_000 } });
    try {
      const send = async (who: 'alice' | 'bob') =>
        api.gateway.app.inject({
          method: 'POST',
          url: '/graphql',
          headers: { authorization: `Bearer ${await token[who]()}` },
          payload: { query: '{ accounts { id } }' },
        });
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await send('alice')).statusCode);
      assert.deepEqual(statuses, [200, 200, 429]);
      const limited = await send('alice');
      assert.equal(errorBodySchema.parse(limited.json()).error.code, 'RATE_LIMITED');
      assert.ok(Number(limited.headers['retry-after']) > 0);
      const bob = await send('bob');
      assert.equal(bob.statusCode, 200, 'counted by the token’s subject, not the shared address');
    } finally {
      await portfolio.stop();
      await api.close();
    }
  });
});
