import { action, createNode, defineService, handle, type NodeOptions } from '@chassis/core';
import type { SpanExporter } from '@chassis/core';
import { sellOrder, sellOrderSchema } from './sell-order.ts';
const discard: SpanExporter = { export: (_s, done) => done({ code: 0 }), shutdown: async () => {} } as SpanExporter;
async function make(extra: Partial<NodeOptions>) {
  const echo = action('echo.echo', { input: sellOrderSchema, output: sellOrderSchema, idempotent: true });
  const node = createNode({ services: [defineService({ name: 'echo', actions: [handle(echo, (i) => i)] })], logLevel: 'silent', callTimeoutMs: 5000, tracing: { exporter: discard }, ...extra });
  await node.start();
  return () => node.call(echo, sellOrder);
}
const variants: Record<string, () => Promise<unknown>> = {
  default: await make({}),
  nopolicies: await make({ policies: { call: { retry: false, breaker: false, bulkhead: false } } }),
  nobreaker: await make({ policies: { call: { breaker: false } } }),
  nobulkhead: await make({ policies: { call: { bulkhead: false } } }),
  noretry: await make({ policies: { call: { retry: false } } }),
};
const best: Record<string, number> = {};
for (let round = 0; round < 6; round++) {
  for (const [name, call] of Object.entries(variants)) {
    const start = process.cpuUsage(); const t0 = performance.now(); let n = 0;
    while (performance.now() - t0 < 700) { for (let i = 0; i < 100; i++) await call(); n += 100; await new Promise((r) => setImmediate(r)); }
    const u = process.cpuUsage(start); const us = (u.user + u.system) / n;
    best[name] = Math.min(best[name] ?? Infinity, us);
  }
}
for (const [k, v] of Object.entries(best)) console.log(k.padEnd(12), v.toFixed(2), 'µs CPU/call (best of 6)');
process.exit(0);
