import type { FastifyPluginCallback } from 'fastify';
import { docsPage, type OpenApiInfo, openApiDocument } from '../openapi.ts';
import type { Route } from '../routes.ts';

export interface OpenApiRoutesOptions {
  routes: readonly Route[];
  info: OpenApiInfo;
  /** The version prefix the routes are served under, or ''. */
  routePrefix: string;
}

/**
 * `/openapi.json`, generated from the route table on its first request (not at start: a gateway nobody
 * asks for it holds no document), and `/docs`, a page that renders it.
 */
export const openApiRoutes: FastifyPluginCallback<OpenApiRoutesOptions> = (
  app,
  { routes, info, routePrefix },
  done,
) => {
  let document: ReturnType<typeof openApiDocument> | undefined;
  app.get('/openapi.json', { config: { rateLimit: false } }, async () => {
    document ??= openApiDocument(routes, { ...info, prefix: routePrefix });
    return document;
  });
  app.get('/docs', { config: { rateLimit: false } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').send(docsPage(info.title, '/openapi.json')),
  );
  done();
};
