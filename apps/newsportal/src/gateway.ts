import { ChassisError } from '@chassis/core';
import { type OpenApiInfo, type Route, type RouteRequest, route } from '@chassis/gateway';
import { createNews, getNews, listAllNews, listNews, updateNews } from '../contracts/orchestrator.ts';
import { labelUsers, relatedLabels, userLabels } from '../contracts/recommendation.ts';
import {
  checkHealth,
  createUser,
  deleteUser,
  getUser,
  listUsers,
  UsersHealth,
  updateUser,
} from '../contracts/users.ts';

/** A path segment that is an integer becomes a number; anything else stays a string, which the contract refuses by name. */
function integer(value: string | undefined): number | string | undefined {
  return value !== undefined && /^-?\d{1,10}$/.test(value) ? Number(value) : value;
}

/** The reader's `user_id` cookie (the book's way of saying who reads), if any. */
function userIdCookie(request: RouteRequest): number | string | undefined {
  const header = request.headers.cookie;
  const cookies = Array.isArray(header) ? header.join('; ') : (header ?? '');
  for (const part of cookies.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === 'user_id') return integer(decodeURIComponent(value.join('=')));
  }
  return undefined;
}

const body = (request: RouteRequest) =>
  typeof request.body === 'object' && request.body !== null ? (request.body as Record<string, unknown>) : {};

const publicRoute = { auth: 'public' } as const;

/** The News portal's HTTP API (specs/newsportal.md): the book's routes, the gateway in nginx's place. */
export const newsportalRoutes: Route[] = [
  route.custom(
    'GET',
    '/v1/users/healthcheck',
    async ({ call }) => {
      const report = await call(checkHealth, {});
      if (report.status !== 'pass') {
        const down = Object.entries(report.checks)
          .filter(([, check]) => check.status === 'fail')
          .map(([name]) => name);
        throw new ChassisError('UNAVAILABLE', `Users is degraded: ${down.join(' and ')} unreachable`, {
          data: report,
        });
      }
      return report;
    },
    {
      ...publicRoute,
      summary: 'Whether users’ database and Redis answer (503 naming the one down)',
      tags: ['users'],
      responseSchema: UsersHealth,
    },
  ),
  route.get('/v1/users', listUsers, { ...publicRoute, summary: 'Users, `count` (1–10) from `start`', tags: ['users'] }),
  route.post('/v1/users', createUser, {
    ...publicRoute,
    status: 201,
    location: (out) => `/v1/users/${out.id}`,
    summary: 'Create a user (409 for an e-mail in use; 503 while Redis is down)',
    tags: ['users'],
  }),
  route.get('/v1/users/:id', getUser, {
    ...publicRoute,
    input: ({ params }) => ({ id: integer(params.id) }),
    summary: 'A user (cache-aside: Redis, then the database)',
    tags: ['users'],
  }),
  route.put('/v1/users/:id', updateUser, {
    ...publicRoute,
    input: (request) => ({ ...body(request), id: integer(request.params.id) }),
    summary: 'Change a user’s name, e-mail or password',
    tags: ['users'],
  }),
  route.delete('/v1/users/:id', deleteUser, {
    ...publicRoute,
    input: ({ params }) => ({ id: integer(params.id) }),
    summary: 'Delete a user',
    tags: ['users'],
  }),
  route.get('/v1/news/all/:page/:limit', listAllNews, {
    ...publicRoute,
    input: ({ params }) => ({ page: integer(params.page), limit: integer(params.limit) }),
    summary: 'A page of every type, merged; `partial` names the types that did not answer',
    tags: ['news'],
  }),
  route.get('/v1/news/:type/:id', getNews, {
    ...publicRoute,
    input: (request) => ({
      type: request.params.type,
      id: integer(request.params.id),
      user_id: userIdCookie(request),
    }),
    summary: 'One item; a `user_id` cookie sends the reading to recommendations',
    tags: ['news'],
  }),
  route.get('/v1/news/:type/:page/:limit', listNews, {
    ...publicRoute,
    input: ({ params }) => ({ type: params.type, page: integer(params.page), limit: integer(params.limit) }),
    summary: 'A page of one type, newest first',
    tags: ['news'],
  }),
  route.post('/v1/news/:type', createNews, {
    ...publicRoute,
    status: 201,
    summary: 'Add an item (version 1)',
    tags: ['news'],
  }),
  route.put('/v1/news/:type', updateNews, {
    ...publicRoute,
    summary: 'The item’s next version (give the `id` and the `version` read; 409 when stale)',
    tags: ['news'],
  }),
  route.get('/v1/recommendation/user/:id', userLabels, {
    ...publicRoute,
    input: ({ params }) => ({ id: integer(params.id) }),
    summary: 'The labels a user reads about',
    tags: ['recommendation'],
  }),
  route.get('/v1/recommendation/user/:id/related', relatedLabels, {
    ...publicRoute,
    input: ({ params }) => ({ id: integer(params.id) }),
    summary: 'Labels to recommend: read by those who read what the user reads, not yet by the user',
    tags: ['recommendation'],
  }),
  route.get('/v1/recommendation/label/:label', labelUsers, {
    ...publicRoute,
    summary: 'The users who read about a label',
    tags: ['recommendation'],
  }),
];

/** What the gateway serves; package.json's `chassis.gateway` names it for `chassis openapi`. */
export const newsportalApi = {
  routes: newsportalRoutes,
  openapi: {
    title: 'News portal',
    version: '0.1.0',
    description: 'The reference system of Microservice Patterns and Best Practices, on Chassis',
  } satisfies OpenApiInfo,
};
