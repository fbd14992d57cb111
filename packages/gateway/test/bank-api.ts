import { setTimeout as sleep } from 'node:timers/promises';
import {
  action,
  ChassisError,
  type ChassisNode,
  createNode,
  defineError,
  defineService,
  handle,
  jwtVerifier,
  MemoryBroker,
  memoryTransport,
  requireIdentity,
  requireRole,
  signToken,
} from '@chassis/core';
import {
  compose,
  createGateway,
  type Gateway,
  type GatewayOptions,
  ownedBy,
  type Route,
  route,
} from '@chassis/gateway';
import { z } from 'zod';

/**
 * The gateway's test app: SimpleBank's public API (specs/simplebank.md) — its routes, auth rules and
 * error cases — over small in-process services, so the edge is tested as the full system will use it.
 */

export const SECRET = 'simplebank-development-secret-32chars';

const AccountId = z.string().regex(/^\d{3,12}$/, 'an account id is digits, e.g. "101"');
const StockSymbol = z.string().regex(/^[A-Z]{1,5}$/, 'a symbol is 1 to 5 capital letters, e.g. "BHP"');
const Quantity = z.number().int().positive().max(1_000_000);
const Money = z.string().regex(/^\d{1,12}\.\d{2}$/, 'an amount is a decimal string with two places, e.g. "91.72"');
const OrderStatus = z.enum(['created', 'placed', 'completed', 'rejected', 'failed', 'canceled']);

export const listAccounts = action('accounts.listAccounts', {
  input: z.object({}),
  output: z.array(z.object({ id: AccountId, name: z.string(), cash: Money })),
  idempotent: true,
});
export const getTransactions = action('accounts.getTransactions', {
  input: z.object({
    accountId: AccountId,
    page: z.number().int().min(1).default(1),
    size: z.number().int().min(1).max(100).default(20),
  }),
  output: z.object({ accountId: AccountId, page: z.number(), size: z.number(), entries: z.array(z.string()) }),
  idempotent: true,
});
export const sellShares = action('orders.sellShares', {
  input: z.object({ accountId: AccountId, symbol: StockSymbol, quantity: Quantity }),
  output: z.object({ orderId: z.string(), status: OrderStatus }),
  idempotent: false,
});
export const getOrder = action('orders.getOrder', {
  input: z.object({ orderId: z.string().min(1).max(64) }),
  output: z.object({
    id: z.string(),
    accountId: AccountId,
    symbol: StockSymbol,
    quantity: Quantity,
    status: OrderStatus,
  }),
  idempotent: true,
});
export const cancelOrder = action('orders.cancelOrder', {
  input: z.object({ orderId: z.string().min(1).max(64) }),
  output: z.object({ id: z.string(), status: OrderStatus }),
  idempotent: true,
});
export const getPrice = action('market-data.getPrice', {
  input: z.object({ symbol: StockSymbol }),
  output: z.object({ symbol: StockSymbol, price: Money }),
  idempotent: true,
});
export const createStrategy = action('investment-strategies.createStrategy', {
  input: z.object({
    name: z.string().min(1).max(100),
    assets: z
      .array(z.object({ assetId: StockSymbol, percentage: z.number().int().min(1).max(100) }))
      .min(1)
      .refine((assets) => assets.reduce((sum, a) => sum + a.percentage, 0) === 100, 'percentages must sum to 100'),
  }),
  output: z.object({ id: z.string(), name: z.string(), createdById: z.string() }),
  idempotent: false,
});
export const slowReport = action('reports.slowReport', {
  input: z.object({ ms: z.number().int().min(0).max(10_000) }),
  output: z.object({ aborted: z.boolean(), traceId: z.string() }),
  idempotent: true,
});

export const InsufficientShares = defineError('INSUFFICIENT_SHARES', { status: 409, retryable: false });

/** The services' state, for tests to look at. */
export interface BankState {
  holdings: Map<string, number>;
  orders: Map<
    string,
    { id: string; accountId: string; symbol: string; quantity: number; status: z.infer<typeof OrderStatus> }
  >;
  sells: number;
  aborted: number;
  users: string[];
}

const ACCOUNTS: Record<string, { name: string; cash: string; owner: string }> = {
  '101': { name: 'Alice ISA', cash: '10000.00', owner: 'alice' },
  '102': { name: 'Bob general', cash: '2500.00', owner: 'bob' },
};

export function bankServices(state: BankState) {
  const accounts = defineService({
    name: 'accounts',
    actions: [
      handle(listAccounts, (_input, ctx) => {
        const user = requireIdentity(ctx.user);
        state.users.push(user.subject);
        return Object.entries(ACCOUNTS)
          .filter(([, account]) => account.owner === user.subject)
          .map(([id, account]) => ({ id, name: account.name, cash: account.cash }));
      }),
      handle(getTransactions, (input) => ({ ...input, entries: [`entry-${input.page}`] })),
    ],
  });
  let next = 1;
  const orders = defineService({
    name: 'orders',
    actions: [
      handle(sellShares, (input, ctx) => {
        // The service checks the caller again: the gateway's word is not trusted.
        requireIdentity(ctx.user);
        const key = `${input.accountId}:${input.symbol}`;
        const free = state.holdings.get(key) ?? 0;
        if (input.quantity > free) {
          throw InsufficientShares(
            `Account ${input.accountId} holds ${free} ${input.symbol}, ${input.quantity} asked`,
            {
              free,
            },
          );
        }
        state.holdings.set(key, free - input.quantity);
        state.sells++;
        const id = `o-${next++}`;
        state.orders.set(id, { id, ...input, status: 'created' });
        return { orderId: id, status: 'created' as const };
      }),
      handle(getOrder, (input) => {
        const order = state.orders.get(input.orderId);
        if (!order) throw new ChassisError('NOT_FOUND', `No order ${input.orderId}`);
        return order;
      }),
      handle(cancelOrder, (input) => {
        const order = state.orders.get(input.orderId);
        if (!order) throw new ChassisError('NOT_FOUND', `No order ${input.orderId}`);
        if (order.status === 'placed') throw new ChassisError('CONFLICT', `Order ${input.orderId} is already placed`);
        order.status = 'canceled';
        return { id: order.id, status: order.status };
      }),
    ],
  });
  const marketData = defineService({
    name: 'market-data',
    actions: [
      handle(getPrice, (input) => {
        const prices: Record<string, string> = { BHP: '91.72', GOOG: '34.21', ABC: '1.17' };
        const price = prices[input.symbol];
        if (!price) throw new ChassisError('NOT_FOUND', `No price for ${input.symbol}`);
        return { symbol: input.symbol, price };
      }),
    ],
  });
  const strategies = defineService({
    name: 'investment-strategies',
    actions: [
      handle(createStrategy, (input, ctx) => {
        const admin = requireRole(ctx.user, 'admin');
        return { id: `s-${input.name.length}`, name: input.name, createdById: admin.subject };
      }),
    ],
  });
  const reports = defineService({
    name: 'reports',
    actions: [
      handle(slowReport, async (input, ctx) => {
        try {
          await sleep(input.ms, undefined, { signal: ctx.signal });
        } catch {
          state.aborted++;
          return { aborted: true, traceId: ctx.span.spanContext().traceId };
        }
        return { aborted: false, traceId: ctx.span.spanContext().traceId };
      }),
    ],
  });
  return [accounts, orders, marketData, strategies, reports];
}

const ownsAccount = ownedBy('accounts', 'accountId');

export const bankRoutes: Route[] = [
  route.get('/accounts', listAccounts, { summary: 'The caller’s accounts' }),
  route.get('/accounts/:accountId/transactions', getTransactions, { auth: { owns: ownsAccount } }),
  route.post('/shares/sell', sellShares, {
    status: 202,
    auth: { roles: ['customer'], owns: ownsAccount },
    location: (out) => `/orders/${out.orderId}`,
    respond: (out) => ({ ok: `sell order ${out.orderId} placed`, ...out }),
    responseSchema: z.object({ ok: z.string(), orderId: z.string(), status: OrderStatus }),
  }),
  route.get('/orders/:id', getOrder, { input: ({ params }) => ({ orderId: params.id }) }),
  route.post('/orders/:id/cancel', cancelOrder, { input: ({ params }) => ({ orderId: params.id }) }),
  route.get('/prices/:symbol', getPrice, { auth: 'public' }),
  route.post('/strategies', createStrategy, {
    status: 201,
    auth: { roles: ['admin'] },
    location: (out) => `/strategies/${out.id}`,
  }),
  route.get('/reports/slow', slowReport, { auth: 'public' }),
  route.custom('GET', '/health', async () => ({ ok: new Date().toISOString() }), {
    auth: 'public',
    responseSchema: z.object({ ok: z.string() }),
  }),
];

export const token = {
  alice: () => signToken(SECRET, { sub: 'alice', roles: ['customer'], accounts: ['101'] }),
  bob: () => signToken(SECRET, { sub: 'bob', roles: ['customer'], accounts: ['102'] }),
  admin: () => signToken(SECRET, { sub: 'admin', roles: ['admin'] }),
};

export interface BankApi {
  node: ChassisNode;
  gateway: Gateway;
  state: BankState;
  close(): Promise<void>;
}

/** The bank's services on one node and a gateway in front of it, with `overrides` for the gateway. */
export async function startBankApi(
  overrides: Partial<GatewayOptions> = {},
  broker = new MemoryBroker(),
): Promise<BankApi> {
  const state: BankState = {
    holdings: new Map([
      ['101:BHP', 1000],
      ['101:GOOG', 103],
      ['102:BHP', 50],
    ]),
    orders: new Map(),
    sells: 0,
    aborted: 0,
    users: [],
  };
  const verifier = jwtVerifier({ secret: SECRET });
  const node = createNode({
    services: bankServices(state),
    transport: memoryTransport({ broker }),
    logLevel: 'silent',
    identity: verifier,
  });
  await node.start();
  const gateway = await createGateway({
    node,
    routes: bankRoutes,
    auth: verifier,
    openapi: { title: 'SimpleBank', version: '1.0.0' },
    rateLimit: false,
    ...overrides,
  });
  await gateway.app.ready();
  return {
    node,
    gateway,
    state,
    async close() {
      await gateway.close();
      await node.stop();
    },
  };
}

/*
 * Backend-for-frontend and GraphQL additions: a portfolio service (holdings and orders by account) that
 * runs on a node of its own, and a composed overview route.
 */

export const listHoldings = action('portfolio.listHoldings', {
  input: z.object({ accountId: AccountId }),
  output: z.array(z.object({ symbol: StockSymbol, quantity: z.number().int().min(0) })),
  idempotent: true,
});
export const listOrders = action('portfolio.listOrders', {
  input: z.object({ accountId: AccountId }),
  output: z.array(getOrder.output),
  idempotent: true,
});

export function portfolioService(state: BankState) {
  return defineService({
    name: 'portfolio',
    actions: [
      handle(listHoldings, (input, ctx) => {
        requireIdentity(ctx.user);
        return [...state.holdings]
          .filter(([key]) => key.startsWith(`${input.accountId}:`))
          .map(([key, quantity]) => ({ symbol: key.slice(key.indexOf(':') + 1), quantity }));
      }),
      handle(listOrders, (input, ctx) => {
        requireIdentity(ctx.user);
        return [...state.orders.values()].filter((order) => order.accountId === input.accountId);
      }),
    ],
  });
}

/** The portfolio service on a second node sharing the bank's broker, as another process would. */
export async function startPortfolioNode(state: BankState, broker: MemoryBroker): Promise<ChassisNode> {
  const node = createNode({
    services: [portfolioService(state)],
    transport: memoryTransport({ broker }),
    logLevel: 'silent',
    identity: jwtVerifier({ secret: SECRET }),
  });
  await node.start();
  return node;
}

/** How long the overview waits for its optional report before showing the page without it. */
export const OVERVIEW_REPORT_BUDGET_MS = 200;

/**
 * One screen's data in one request: the account's transactions (required: no overview without them),
 * prices of `?symbols=` (an unknown symbol fails that part only) and a report taking `?reportMs=`
 * (past its budget it is left out). `?size=` goes to the transactions, to make the required part fail.
 */
export const bffRoutes: Route[] = [
  route.custom(
    'GET',
    '/accounts/:accountId/overview',
    async ({ request, call, deadline }) => {
      const accountId = request.params.accountId ?? '';
      const symbols = String(request.query.symbols ?? 'BHP,GOOG').split(',');
      const size = Number(request.query.size ?? 5);
      const reportMs = Number(request.query.reportMs ?? 0);
      return compose(
        {
          transactions: ({ timeoutMs }) => call(getTransactions, { accountId, size }, { timeoutMs }),
          prices: ({ timeoutMs }) => Promise.all(symbols.map((symbol) => call(getPrice, { symbol }, { timeoutMs }))),
          report: ({ timeoutMs }) => call(slowReport, { ms: reportMs }, { timeoutMs }),
        },
        { deadline, timeoutMs: { report: OVERVIEW_REPORT_BUDGET_MS }, required: ['transactions'] },
      );
    },
    {
      auth: { owns: (user, request) => ownsAccount(user, request.params) },
      summary: 'An account’s transactions, prices and report in one answer; `partial` when a part is missing',
    },
  ),
];
