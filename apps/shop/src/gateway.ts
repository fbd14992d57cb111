import type { ChassisNode, Identity } from '@chassis/core';
import { compose, type OpenApiInfo, type Route, route } from '@chassis/gateway';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import { login } from '../contracts/auth.ts';
import { getOrder, listUserOrders, placeOrder, reviewOrder } from '../contracts/orders.ts';
import { getOrderPayment } from '../contracts/payments.ts';
import { createProduct, getProduct, searchProducts } from '../contracts/products.ts';
import { getRecommendations } from '../contracts/recommendations.ts';
import { addReview, listReviews, recentReviews } from '../contracts/reviews.ts';
import { createUser, getUser } from '../contracts/users.ts';

/** A customer reads only their own orders and recommendations; admins anyone's. */
const isSelfOrAdmin = (user: Identity, input: { userId: string }) =>
  user.roles.includes('admin') || user.subject === input.userId;

/** How long a BFF waits for one of its parts before answering without it. */
const PART_TIMEOUT_MS = 1500;

const BffAnswer = z.object({
  products: z.array(z.unknown()).nullable(),
  reviews: z.array(z.unknown()).nullable(),
  recommendations: z.array(z.unknown()).nullable().optional(),
  partial: z.boolean(),
  missing: z.array(z.string()),
  errors: z.record(z.string(), z.object({ code: z.string(), message: z.string() })),
});

/** A composition as the BFFs answer it: each part's value at the top, the missing parts named. */
function flatten<T extends Record<string, unknown>>(composed: {
  data: T;
  partial: boolean;
  errors: Record<string, { code: string; message: string } | undefined>;
}) {
  return {
    ...composed.data,
    partial: composed.partial,
    missing: Object.keys(composed.errors),
    errors: composed.errors,
  };
}

/** The Shop's HTTP API (specs/shop.md), versioned under /api/v1, and the two BFFs. */
export const shopRoutes: Route[] = [
  route.custom('GET', '/health', async () => ({ ok: new Date().toISOString() }), {
    auth: 'public',
    summary: 'Liveness: the time, in UTC',
    responseSchema: z.object({ ok: z.string() }),
    tags: ['health'],
  }),
  route.post('/api/v1/users', createUser, {
    status: 201,
    auth: 'public',
    location: (out) => `/api/v1/users/${out.id}`,
    summary: 'Sign up (409 naming the field for a username or e-mail address that is taken)',
    tags: ['users'],
  }),
  route.get('/api/v1/users/:id', getUser, { summary: 'A user (404 USER_NOT_FOUND)', tags: ['users'] }),
  route.post('/api/v1/login', login, {
    auth: 'public',
    summary: 'Exchange a username and password for a JWT',
    respond: (out) => ({ token: out.token, tokenType: out.tokenType, expiresIn: out.expiresIn }),
    tags: ['auth'],
  }),
  route.post('/api/v1/products', createProduct, {
    status: 201,
    auth: { roles: ['admin'] },
    location: (out) => `/api/v1/products/${out.id}`,
    summary: 'Add a product (admins)',
    tags: ['products'],
  }),
  route.get('/api/v1/products', searchProducts, {
    auth: 'public',
    summary: 'Search the catalogue: `q` matches words of the name and description, case-insensitively',
    tags: ['products'],
  }),
  route.get('/api/v1/products/:id', getProduct, { auth: 'public', summary: 'A product', tags: ['products'] }),
  route.get('/api/v1/products/:id/reviews', listReviews, {
    auth: 'public',
    input: ({ params }) => ({ productId: params.id }),
    summary: 'A product’s reviews, newest first',
    tags: ['reviews'],
  }),
  route.post('/api/v1/products/:id/reviews', addReview, {
    status: 201,
    input: ({ params, body }) => ({ ...(body as object), productId: params.id }),
    summary: 'Review a product: a rating of 1 to 5 and a comment',
    tags: ['reviews'],
  }),
  route.post('/api/v1/orders', placeOrder, {
    status: 202,
    location: (out) => `/api/v1/orders/${out.id}`,
    summary: 'Place an order: 202 pending; the saga confirms it, holds it (over 10,000.00) or cancels it',
    tags: ['orders'],
  }),
  route.get('/api/v1/orders/:id', getOrder, { summary: 'An order (403 for another user’s)', tags: ['orders'] }),
  route.post('/api/v1/orders/:id/review', reviewOrder, {
    status: 202,
    auth: { roles: ['admin'] },
    location: (out) => `/api/v1/orders/${out.id}`,
    summary: 'Approve (charge, confirm) or reject (void, cancel) an order held for review (admins)',
    tags: ['orders'],
  }),
  route.get('/api/v1/orders/:id/payment', getOrderPayment, {
    input: ({ params }) => ({ orderId: params.id }),
    summary: 'An order’s payment: charged, held, declined or voided',
    tags: ['orders'],
  }),
  route.get('/api/v1/users/:userId/orders', listUserOrders, {
    auth: { owns: isSelfOrAdmin },
    summary: 'A user’s orders, newest first (403 for another user’s)',
    tags: ['orders'],
  }),
  route.get('/api/v1/users/:userId/recommendations', getRecommendations, {
    auth: { owns: isSelfOrAdmin },
    summary: 'Recommended products, from the order history',
    tags: ['recommendations'],
  }),
  route.custom(
    'GET',
    '/mobile/products',
    async ({ call, deadline, request }) => {
      const q = typeof request.query.q === 'string' ? request.query.q : undefined;
      const composed = await compose(
        {
          products: async ({ timeoutMs }) => (await call(searchProducts, { q, limit: 20 }, { timeoutMs })).products,
          reviews: async ({ timeoutMs }) => (await call(recentReviews, { limit: 10 }, { timeoutMs })).reviews,
        },
        { deadline, timeoutMs: { products: PART_TIMEOUT_MS, reviews: PART_TIMEOUT_MS } },
      );
      return flatten(composed);
    },
    {
      auth: 'public',
      summary: 'The mobile app’s product screen: products and reviews, in parallel; a missing part is named',
      responseSchema: BffAnswer,
      tags: ['bff'],
    },
  ),
  route.custom(
    'GET',
    '/web/products',
    async ({ call, deadline, request }) => {
      const q = typeof request.query.q === 'string' ? request.query.q : undefined;
      const userId = request.user!.subject;
      const composed = await compose(
        {
          products: async ({ timeoutMs }) => (await call(searchProducts, { q, limit: 50 }, { timeoutMs })).products,
          reviews: async ({ timeoutMs }) => (await call(recentReviews, { limit: 20 }, { timeoutMs })).reviews,
          recommendations: async ({ timeoutMs }) =>
            (await call(getRecommendations, { userId, limit: 5 }, { timeoutMs })).products,
        },
        {
          deadline,
          timeoutMs: { products: PART_TIMEOUT_MS, reviews: PART_TIMEOUT_MS, recommendations: PART_TIMEOUT_MS },
        },
      );
      return flatten(composed);
    },
    {
      summary: 'The web shop’s product page: products, reviews and your recommendations, in parallel',
      responseSchema: BffAnswer,
      tags: ['bff'],
    },
  ),
];

/** What the gateway serves, for `chassis openapi` as for the running shop. */
export const shopApi = {
  routes: shopRoutes,
  openapi: {
    title: 'Shop',
    version: '0.1.0',
    description: 'The e-commerce case study of the Microservices Book, on Chassis',
  } satisfies OpenApiInfo,
};

const HTTP_METRIC = 'chassis_http_server_duration_seconds';

/**
 * The book's `node_requests_total{method, route, status}`, beside the chassis's own request histogram:
 * read from that histogram's counts when scraped, so the two never disagree and a request is not
 * counted twice on its way.
 */
export function registerBookMetrics(node: ChassisNode): void {
  const registry: Registry = node.metrics.registry;
  if (registry.getSingleMetric('node_requests_total')) return;
  new Counter({
    name: 'node_requests_total',
    help: 'HTTP requests answered by the gateway, by method, route and status (the Microservices Book’s counter)',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
    async collect() {
      const histogram = registry.getSingleMetric(HTTP_METRIC);
      this.reset();
      if (!histogram) return;
      for (const sample of (await histogram.get()).values) {
        if ((sample as { metricName?: string }).metricName !== `${HTTP_METRIC}_count`) continue;
        const { method, route, status } = sample.labels;
        this.inc({ method: String(method), route: String(route), status: String(status) }, sample.value);
      }
    },
  });
}
