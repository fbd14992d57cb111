import { type OpenApiInfo, ownedBy, type Route, route } from '@chassis/gateway';
import { z } from 'zod';
import { listAccounts, listTransactions } from '../contracts/account-transactions.ts';
import { listAlerts, receiveAlerts } from '../contracts/alerts.ts';
import { feeReport, listOrders } from '../contracts/customer-orders.ts';
import { getHoldings } from '../contracts/holdings.ts';
import { issueToken } from '../contracts/identity.ts';
import { getPrice, listPrices } from '../contracts/market-data.ts';
import { listNotifications } from '../contracts/notifications.ts';
import { buyShares, cancelOrder, getOrder, sellShares } from '../contracts/orders.ts';
import { createPayment, getPayment } from '../contracts/payments.ts';
import { createStrategy, getInvestment, getStrategy, invest, listStrategies } from '../contracts/strategies.ts';

/** A customer acts only on their own accounts; admins on any. */
const ownsAccount = ownedBy('accounts', 'accountId', { bypassRoles: ['admin'] });

/** SimpleBank's HTTP API (specs/simplebank.md), as far as the services built so far serve it. */
export const simplebankRoutes: Route[] = [
  route.custom('GET', '/health', async () => ({ ok: new Date().toISOString() }), {
    auth: 'public',
    summary: 'Liveness: the time, in UTC',
    responseSchema: z.object({ ok: z.string() }),
    tags: ['health'],
  }),
  route.post('/auth/token', issueToken, {
    auth: 'public',
    summary: 'Exchange a username and password for an access token',
    tags: ['auth'],
  }),
  route.get('/accounts', listAccounts, { summary: 'Your accounts, with their cash', tags: ['accounts'] }),
  route.post('/shares/sell', sellShares, {
    status: 202,
    auth: { roles: ['customer', 'admin'], owns: ownsAccount },
    location: (out) => `/orders/${out.orderId}`,
    respond: (out) => ({ ok: `sell order ${out.orderId} placed`, ...out }),
    responseSchema: sellShares.output.extend({ ok: z.string() }),
    summary: 'Sell shares from one of your accounts',
    tags: ['orders'],
  }),
  route.post('/shares/buy', buyShares, {
    status: 202,
    auth: { roles: ['customer', 'admin'], owns: ownsAccount },
    location: (out) => `/orders/${out.orderId}`,
    respond: (out) => ({ ok: `buy order ${out.orderId} placed`, ...out }),
    responseSchema: buyShares.output.extend({ ok: z.string() }),
    summary: 'Buy shares into one of your accounts: a quantity, or as many as an amount buys',
    tags: ['orders'],
  }),
  route.get('/orders/:id', getOrder, {
    input: ({ params }) => ({ orderId: params.id }),
    summary: 'An order with its history',
    tags: ['orders'],
  }),
  route.get('/orders', listOrders, {
    auth: { owns: ownsAccount },
    summary: 'An account’s orders, newest first',
    tags: ['orders'],
  }),
  route.post('/orders/:id/cancel', cancelOrder, {
    input: ({ params }) => ({ orderId: params.id }),
    summary: 'Cancel an order the exchange has not been given yet (409 after that)',
    tags: ['orders'],
  }),
  route.get('/accounts/:accountId/transactions', listTransactions, {
    auth: { owns: ownsAccount },
    summary: 'An account’s ledger entries, newest first',
    tags: ['accounts'],
  }),
  route.get('/accounts/:accountId/holdings', getHoldings, {
    auth: { owns: ownsAccount },
    summary: 'An account’s cash and positions valued at current prices (degraded: last prices seen, or none)',
    tags: ['accounts'],
  }),
  route.post('/payments', createPayment, {
    status: 201,
    auth: { roles: ['customer', 'admin'], owns: ownsAccount },
    location: (out) => `/payments/${out.id}`,
    summary: 'Pay money into one of your accounts (a simulated card payment, completed at once)',
    tags: ['payments'],
  }),
  route.get('/payments/:id', getPayment, {
    input: ({ params }) => ({ paymentId: params.id }),
    summary: 'A payment (404 for one into another customer’s account)',
    tags: ['payments'],
  }),
  route.get('/notifications', listNotifications, {
    auth: { owns: ownsAccount },
    summary: 'What was sent to an account’s owner about its orders and payments, newest first',
    tags: ['notifications'],
  }),
  route.post('/alerts', receiveAlerts, {
    status: 202,
    // Alertmanager and Grafana send no bearer token.
    auth: 'public',
    summary: 'Alert webhook: a Prometheus Alertmanager (v4) or Grafana payload; one row per alert',
    tags: ['alerts'],
  }),
  route.get('/alerts', listAlerts, {
    auth: { roles: ['admin'] },
    summary: 'The alerts received, newest first (admins)',
    tags: ['alerts'],
  }),
  route.get('/prices', listPrices, { summary: 'Current prices', tags: ['prices'] }),
  route.get('/prices/:symbol', getPrice, { summary: 'One symbol’s price', tags: ['prices'] }),
  route.post('/strategies', createStrategy, {
    status: 201,
    auth: { roles: ['admin'] },
    location: (out) => `/strategies/${out.id}`,
    summary: 'Create a premade strategy (admins); its percentages sum to 100',
    tags: ['strategies'],
  }),
  route.get('/strategies', listStrategies, { summary: 'The premade strategies', tags: ['strategies'] }),
  route.get('/strategies/:id', getStrategy, { summary: 'One strategy', tags: ['strategies'] }),
  route.post('/strategies/:strategyId/orders', invest, {
    status: 202,
    auth: { owns: ownedBy('accounts', 'destinationAccountId', { bypassRoles: ['admin'] }) },
    location: (out) => `/investments/${out.id}`,
    summary: 'Invest a paid amount in a strategy: one buy order per allocation once the payment completes',
    tags: ['strategies'],
  }),
  route.get('/investments/:id', getInvestment, { summary: 'An investment and its orders', tags: ['strategies'] }),
  route.get('/reports/fees', feeReport, {
    auth: { roles: ['admin'] },
    summary: 'Fees charged, net of refunds, per symbol or account',
    tags: ['reports'],
  }),
];

/**
 * What the gateway serves: the route table and the title of /openapi.json and /docs. package.json's
 * `"chassis.gateway"` names it, so that `chassis openapi` writes the same document without starting the bank.
 */
export const simplebankApi = {
  routes: simplebankRoutes,
  openapi: {
    title: 'SimpleBank',
    version: '0.1.0',
    description: 'The flagship reference system of Chassis',
  } satisfies OpenApiInfo,
};
