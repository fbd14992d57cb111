import { ownedBy, type Route, route } from '@chassis/gateway';
import { z } from 'zod';
import { listAccounts } from '../contracts/account-transactions.ts';
import { issueToken } from '../contracts/identity.ts';
import { getOrder, sellShares } from '../contracts/orders.ts';

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
  route.get('/orders/:id', getOrder, {
    input: ({ params }) => ({ orderId: params.id }),
    summary: 'An order with its history',
    tags: ['orders'],
  }),
];
