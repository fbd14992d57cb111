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
  // Each label set bound once: prom-client would validate and hash four labels on every request.
  const children = new Map<string, BoundHistogram>();
  app.addHook('onResponse', (request, reply, done) => {
    // Only matched routes become label values: a scan of random paths must not grow the metric.
    const route = request.routeOptions.url ?? '(unmatched)';
    const status = reply.statusCode;
    const outcome = contextOf(request).outcome ?? 'ok';
    const key = `${request.method} ${status} ${outcome} ${route}`;
    let child = children.get(key);
    if (!child) {
      child = new BoundHistogram(duration, { method: request.method, route, status: String(status), outcome }, BUCKETS);
      children.set(key, child);
    }
    child.observe(reply.elapsedTime / 1000);
    done();
  });
  done();
};

/** Times every request into `chassis_http_server_duration_seconds{method, route, status, outcome}`. */
export const requestMetrics = fp(plugin, {
  name: 'chassis-request-metrics',
  fastify: '5.x',
  dependencies: ['chassis-request-context'],
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
