import type { FastifyPluginCallback } from 'fastify';
import { docsPage, type OpenApiInfo, openApiDocument } from '../openapi.ts';
import type { Route } from '../routes.ts';

export interface OpenApiRoutesOptions {
  routes: readonly Route[];
  info: OpenApiInfo;
  /** The version prefix the routes are served under, or ''. */
  routePrefix: string;
}

/** `/openapi.json`, generated once from the route table, and `/docs`, a page that renders it. */
export const openApiRoutes: FastifyPluginCallback<OpenApiRoutesOptions> = (
  app,
  { routes, info, routePrefix },
  done,
) => {
  const document = openApiDocument(routes, { ...info, prefix: routePrefix });
  app.get('/openapi.json', { config: { rateLimit: false } }, async () => document);
  app.get('/docs', { config: { rateLimit: false } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').send(docsPage(info.title, '/openapi.json')),
  );
  done();
};
