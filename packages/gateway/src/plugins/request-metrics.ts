import { BoundHistogram } from '@chassis/core';
import type { FastifyPluginCallback } from 'fastify';
import fp from 'fastify-plugin';
import { Histogram, type Registry } from 'prom-client';
import { contextOf } from './request-context.ts';

export interface RequestMetricsOptions {
  /** The node's registry, so the histogram is on the node's `/metrics`. */
  registry: Registry;
}

type Labels = 'method' | 'route' | 'status' | 'outcome';

const HTTP_METRIC = 'chassis_http_server_duration_seconds';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const plugin: FastifyPluginCallback<RequestMetricsOptions> = (app, { registry }, done) => {
  const duration = httpHistogram(registry);
  // Each label set bound once: prom-client would validate and hash four labels on every request. Found
  // by method, then route, then status and outcome, each a string the engine has hashed already (the
  // route is the route's own string), rather than by a key concatenated on every request.
  const children = new Map<string, Map<string, Map<string, BoundHistogram>>>();
  const childOf = (method: string, route: string, status: number, outcome: string): BoundHistogram => {
    let byRoute = children.get(method);
    if (!byRoute) {
      byRoute = new Map();
      children.set(method, byRoute);
    }
    let byEnd = byRoute.get(route);
    if (!byEnd) {
      byEnd = new Map();
      byRoute.set(route, byEnd);
    }
    // An ok answer's status alone says which: the usual lookup builds no string (V8 caches a small
    // number's string).
    const key = outcome === 'ok' ? String(status) : `${status} ${outcome}`;
    let child = byEnd.get(key);
    if (!child) {
      child = new BoundHistogram(duration, { method, route, status: String(status), outcome }, BUCKETS);
      byEnd.set(key, child);
    }
    return child;
  };
  // The one hook a request passes through (a hook stage costs Fastify's runner and three closures every
  // request): it also sets the request id header, on every answer that goes through `reply.send`.
  // onSend, not onResponse: Fastify adds two listeners to every response (and removes them), a closure
  // and two clock reads for a route with an onResponse hook, which cost the gateway more than its own
  // work in it. The time is the request's from its arrival until its answer is handed to the socket
  // (the gateway's answers are JSON, written at once), on the clock the context started.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    const context = contextOf(request);
    // Only matched routes become label values: a scan of random paths must not grow the metric.
    const route = context.route ?? request.routeOptions.url ?? '(unmatched)';
    childOf(request.method, route, reply.statusCode, context.outcome ?? 'ok').observe(
      (performance.now() - context.startedAt) / 1000,
    );
    done(null, payload);
  });
  done();
};

/** Times every request into `chassis_http_server_duration_seconds{method, route, status, outcome}`. */
export const requestMetrics = fp(plugin, {
  name: 'chassis-request-metrics',
  fastify: '5.x',
});

/** The gateway's request histogram on the node's registry (one, however many gateways share the node). */
function httpHistogram(registry: Registry): Histogram<Labels> {
  const existing = registry.getSingleMetric(HTTP_METRIC);
  if (existing) return existing as Histogram<Labels>;
  return new Histogram({
    name: HTTP_METRIC,
    help: 'Time to answer an HTTP request at the gateway, by method, route, status and outcome',
    labelNames: ['method', 'route', 'status', 'outcome'] as const,
    buckets: BUCKETS,
    registers: [registry],
  });
}
