import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { action, createNode, defineService, handle, MemoryBroker, memoryTransport } from '@chassis/core';
import { z } from 'zod';

const getPrice = action('market-data.getPrice', {
  input: z.object({ symbol: z.string() }),
  output: z.object({ price: z.string() }),
  idempotent: true,
});

describe('spans exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set', () => {
  const received: { path: string; body: string }[] = [];
  const collector = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => {
      body += chunk;
    });
    request.on('end', () => {
      received.push({ path: request.url ?? '', body });
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{}');
    });
  });
  after(() => new Promise<void>((resolve) => collector.close(() => resolve())));

  it('a node with no tracing option sends its spans to the collector', async () => {
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    const savedSampler = process.env.OTEL_TRACES_SAMPLER;
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
    // Every trace recorded, so the one call below is (the default records 1 in 10).
    process.env.OTEL_TRACES_SAMPLER = 'parentbased_always_on';
    try {
      const node = createNode({
        services: [defineService({ name: 'market-data', actions: [handle(getPrice, () => ({ price: '91.72' }))] })],
        transport: memoryTransport({ broker: new MemoryBroker() }),
        logLevel: 'silent',
      });
      await node.start();
      await node.call(getPrice, { symbol: 'BHP' });
      await node.stop(); // flushes the batch of spans
    } finally {
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
      if (savedSampler === undefined) delete process.env.OTEL_TRACES_SAMPLER;
      else process.env.OTEL_TRACES_SAMPLER = savedSampler;
    }
    const traces = received.filter((r) => r.path === '/v1/traces');
    assert.ok(traces.length >= 1, `the collector got ${received.map((r) => r.path).join(', ') || 'nothing'}`);
    const all = traces.map((t) => t.body).join('\n');
    // A local call: one span, the call's, which its handler ran under.
    assert.match(all, /call market-data\.getPrice/);
    assert.match(all, /chassis\.local/);
    assert.doesNotMatch(all, /serve market-data\.getPrice/);
    assert.match(all, /market-data/, 'the resource names the service');
  });
});
