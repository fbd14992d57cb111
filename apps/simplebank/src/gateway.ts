import { ownedBy, type Route, route } from '@chassis/gateway';
import { z } from 'zod';
import { listAccounts, listTransactions } from '../contracts/account-transactions.ts';
import { feeReport, listOrders } from '../contracts/customer-orders.ts';
import { issueToken } from '../contracts/identity.ts';
import { getPrice, listPrices } from '../contracts/market-data.ts';
import { buyShares, cancelOrder, getOrder, sellShares } from '../contracts/orders.ts';

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
  route.get('/prices', listPrices, { summary: 'Current prices', tags: ['prices'] }),
  route.get('/prices/:symbol', getPrice, { summary: 'One symbol’s price', tags: ['prices'] }),
  route.get('/reports/fees', feeReport, {
    auth: { roles: ['admin'] },
    summary: 'Fees charged, net of refunds, per symbol or account',
    tags: ['reports'],
  }),
];
