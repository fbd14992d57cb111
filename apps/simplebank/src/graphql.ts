import { ChassisError, type OutputOf } from '@chassis/core';
import { type GraphqlResolvers, graphqlEndpoint } from '@chassis/gateway';
import { listAccounts } from '../contracts/account-transactions.ts';
import { listOrders } from '../contracts/customer-orders.ts';
import { getHoldings } from '../contracts/holdings.ts';
import { getPrice } from '../contracts/market-data.ts';
import { requireAccount } from '../services/shared/access.ts';

/**
 * SimpleBank's GraphQL schema, after the book's listing 3.1. Money is a decimal string here too, never
 * a float; a price is null when market data has none to give (holdings degraded).
 */
export const simplebankSchema = /* GraphQL */ `
  type Query {
    "The caller's accounts (every account, for an admin)."
    accounts: [Account]
    "One account: FORBIDDEN when it is another customer's."
    account(id: ID!): Account
  }
  type Account {
    id: ID!
    name: String!
    currentHoldings: [Holding]
    "The newest 100 orders."
    orders: [Order]
  }
  type Order {
    id: ID!
    status: String!
    asset: Asset
    quantity: Int!
  }
  type Holding {
    asset: Asset
    quantity: Int!
  }
  type Asset {
    "The symbol, e.g. BHP."
    id: ID!
    name: String!
    "Always stock, so far."
    type: String!
    "A decimal string, e.g. 91.72."
    price: String
  }
`;

type Account = OutputOf<typeof listAccounts>[number];

/** An asset as the resolvers pass it on: its price, when the parent already knows it (a holding's). */
interface Asset {
  id: string;
  name: string;
  type: 'stock';
  price?: string | null;
}

const asset = (symbol: string, price?: string | null): Asset => ({
  id: symbol,
  name: symbol,
  type: 'stock',
  ...(price === undefined ? {} : { price }),
});

/** Each field is an action called as the caller: the services check what the caller may see. */
export const simplebankResolvers: GraphqlResolvers = {
  Query: {
    accounts: (_root, _args, ctx) => {
      ctx.requireUser();
      return ctx.call(listAccounts, {});
    },
    account: async (_root, args: { id: string }, ctx) => {
      requireAccount(ctx.requireUser(), args.id);
      const account = (await ctx.call(listAccounts, {})).find((candidate) => candidate.id === args.id);
      if (!account) throw new ChassisError('NOT_FOUND', `There is no account ${args.id}`);
      return account;
    },
  },
  Account: {
    currentHoldings: async (account: Account, _args, ctx) => {
      const holdings = await ctx.call(getHoldings, { accountId: account.id });
      return holdings.positions.map((position) => ({
        asset: asset(position.symbol, position.price),
        quantity: position.quantity,
      }));
    },
    orders: async (account: Account, _args, ctx) => {
      const { orders } = await ctx.call(listOrders, { accountId: account.id, size: 100 });
      return orders.map((order) => ({
        id: order.id,
        status: order.status,
        asset: asset(order.symbol),
        quantity: order.quantity,
      }));
    },
  },
  Asset: {
    price: async (parent: Asset, _args, ctx) =>
      parent.price !== undefined ? parent.price : (await ctx.call(getPrice, { symbol: parent.id })).price,
  },
};

/** `POST /graphql` (and GET), as createGateway's `register` hook. */
export const simplebankGraphql = graphqlEndpoint({ schema: simplebankSchema, resolvers: simplebankResolvers });
