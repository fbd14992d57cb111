import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  action,
  type ChassisNode,
  callOps,
  callOpsHttp,
  createNode,
  defineService,
  event,
  handle,
  isChassisError,
  MemoryBroker,
  memoryTransport,
  on,
  type StoredSpan,
  type TraceSummary,
} from '@chassis/core';
import { typescriptArgs, waitUntil } from '@chassis/testing';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AlwaysOnSampler, InMemorySpanExporter, TracerProvider } from '@opentelemetry/sdk-trace';
import { z } from 'zod';
import { SpanStore } from '../src/observability/span-store.ts';
import { noSpan, Tracing } from '../src/observability/tracing.ts';

/**
 * The span store every node keeps (the last spans it recorded) and the ops actions that read it
 * (`traces`, `trace`), over the ops HTTP port and the transport; `ctx.fetch`'s client span and the
 * context it sends; a call made through ops with a `traceparent` found again by its trace id.
 */
const OPS_SECRET = 'traces-ops-secret-0123456789';

describe('span store', () => {
  it('keeps the last N finished spans, the oldest dropped first, grouped by trace', () => {
    const store = new SpanStore({ keep: 3, nodeId: 'n1', serviceName: 'desk' });
    const tracer = new TracerProvider({ sampler: new AlwaysOnSampler(), spanProcessors: [store] }).getTracer('t');
    const root = tracer.startSpan('first', { kind: SpanKind.SERVER, attributes: { 'rpc.service': 'front' } });
    const parent = trace.setSpan(ROOT_CONTEXT, root);
    const children = ['a', 'b', 'c'].map((name) => tracer.startSpan(name, {}, parent));
    for (const child of children) child.end();
    root.end();
    assert.equal(store.size, 3);
    const traceId = root.spanContext().traceId;
    // 'a' was the oldest of four: gone; the children took their parent's service.
    const spans = store.trace(traceId);
    assert.deepEqual(
      spans.map((s) => s.name),
      ['first', 'b', 'c'],
    );
    assert.deepEqual(
      spans.map((s) => s.service),
      ['front', 'front', 'front'],
    );
    assert.equal(spans[1]!.parentSpanId, root.spanContext().spanId);
    assert.equal(spans[0]!.kind, 'server');
    assert.equal(spans[1]!.kind, 'internal');
    const other = tracer.startSpan('second');
    other.end();
    assert.equal(store.size, 3);
    const [newest, older] = store.traces({ limit: 10 });
    assert.equal(newest!.root, 'second');
    assert.deepEqual(newest!.services, ['desk']); // no better name: the node's one service
    assert.equal(older!.traceId, traceId);
    assert.equal(older!.spans, 2);
    assert.deepEqual(store.traces({ limit: 1 }).length, 1);
    assert.deepEqual(
      store.traces({ limit: 10, service: 'front' }).map((t) => t.traceId),
      [traceId],
    );
    assert.deepEqual(store.trace(`${'0'.repeat(31)}1`), []);
  });

  it('shows a trace the same whether the SDK records it (an exporter is set) or the node does without it', async () => {
    const base = { nodeId: 'n1', defaultServiceName: 'desk', sampleRatio: 1, env: {} };
    const exporter = new InMemorySpanExporter();
    const views = [];
    for (const tracing of [await Tracing.create(base), await Tracing.create({ ...base, exporter })]) {
      const parent = tracing.extract({ traceparent: `00-${'4bf92f3577b34da6a3ce929d0e0e4736'}-00f067aa0ba902b7-01` });
      assert.equal(tracing.unrecorded(parent), undefined);
      const served = tracing.record('serve front.get', SpanKind.SERVER, parent, { 'rpc.service': 'front' });
      const inner = tracing.child(served, 'compute', SpanKind.INTERNAL, { step: 1, tags: ['a', 'b'] });
      inner.setAttribute('rows', 3).setStatus({ code: SpanStatusCode.OK });
      Tracing.end(inner, new Error('ignored: the status was OK'));
      const out = tracing.record('call pricer.quote', SpanKind.CLIENT, served, { 'rpc.service': 'pricer' });
      Tracing.end(out, Object.assign(new Error('no quote'), { code: 'NOT_FOUND' }));
      out.setAttribute('after', 'the end'); // ignored once ended
      Tracing.end(served);
      // A trace of its own, started here: a root span with the node's one service.
      assert.equal(tracing.unrecorded(noSpan), undefined);
      Tracing.end(tracing.record('schedule tick', SpanKind.INTERNAL, noSpan, {}));
      // By name: the SDK's start times are whole milliseconds, so its spans started in one tie.
      const spans = tracing
        .store!.trace('4bf92f3577b34da6a3ce929d0e0e4736')
        .sort((a, b) => b.name.localeCompare(a.name));
      const ids = new Map(spans.map((span, i) => [span.spanId, `#${i}`]));
      const [summary] = tracing.store!.traces({ limit: 1 });
      views.push({
        root: { ...summary!, traceId: summary!.traceId.length, startedAt: typeof summary!.startedAt, durationMs: 0 },
        spans: spans.map(({ spanId, parentSpanId, startMs, startedAt, durationMs, ...rest }) => {
          assert.ok(startMs > 1.7e12 && durationMs >= 0 && startedAt === new Date(startMs).toISOString());
          return { ...rest, spanId: ids.get(spanId), parentSpanId: ids.get(parentSpanId!) ?? parentSpanId };
        }),
      });
    }
    assert.equal(exporter.getFinishedSpans().length, 4);
    assert.deepEqual(views[0], views[1]);
    assert.deepEqual(
      views[0]!.spans.map((s) => [s.name, s.kind, s.service, s.parentSpanId, s.status, s.error]),
      [
        ['serve front.get', 'server', 'front', '00f067aa0ba902b7', 'unset', undefined],
        ['compute', 'internal', 'front', '#0', 'ok', undefined],
        ['call pricer.quote', 'client', 'front', '#0', 'error', 'no quote'],
      ],
    );
    assert.deepEqual(views[0]!.spans[1]!.attributes, {
      step: 1,
      tags: 'a,b',
      rows: 3,
      'chassis.error_code': 'INTERNAL',
    });
    assert.deepEqual(views[0]!.spans[2]!.attributes, { 'rpc.service': 'pricer', 'chassis.error_code': 'NOT_FOUND' });
    assert.deepEqual(views[0]!.root, {
      traceId: 32,
      root: 'schedule tick',
      startedAt: 'string',
      durationMs: 0,
      spans: 1,
      services: ['desk'],
      error: false,
    });
  });

  it('is sized by tracing.keepSpans or CHASSIS_TRACE_KEEP, 0 keeping none; a bad size fails at start', async () => {
    const base = { nodeId: 'n1', defaultServiceName: 'desk' };
    assert.equal((await Tracing.create({ ...base, env: {} })).store?.keep, 2000);
    assert.equal((await Tracing.create({ ...base, env: { CHASSIS_TRACE_KEEP: '10' } })).store?.keep, 10);
    const none = await Tracing.create({ ...base, keepSpans: 0, env: {} });
    assert.equal(none.store, undefined);
    assert.equal(none.recording, false);
    for (const wrong of [{ keepSpans: -1, env: {} }, { env: { CHASSIS_TRACE_KEEP: 'lots' } }]) {
      await assert.rejects(Tracing.create({ ...base, ...wrong }), (error: unknown) => isChassisError(error, 'CONFIG'));
    }
  });

  it('loads the tracing SDK only for a node that exports spans (the store alone records without it)', async () => {
    // A process of its own, so that nothing this test file imported counts: a resolve hook sees every
    // module it imports, and reports the SDK's and its resources'.
    const script = `
      import { registerHooks } from 'node:module';
      const sdk = new Set();
      registerHooks({
        resolve(specifier, context, next) {
          const resolved = next(specifier, context);
          const name = /\\/@opentelemetry\\/(sdk-trace|resources)\\//.exec(resolved.url);
          if (name) sdk.add(name[1]);
          return resolved;
        },
      });
      const { InMemorySpanExporter, Tracing } = await import('@chassis/core');
      const base = { nodeId: 'n1', defaultServiceName: 'desk', env: {} };
      const storeOnly = await Tracing.create(base);
      const before = [...sdk];
      const exporter = new InMemorySpanExporter();
      const exporting = await Tracing.create({ ...base, exporter });
      const span = exporting.tracer.startSpan('kept');
      span.end();
      console.log(JSON.stringify({ recording: storeOnly.recording, before, after: [...sdk].sort(), kept: exporter.getFinishedSpans().map((s) => s.name) }));
    `;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [...typescriptArgs(), '--input-type=module', '-e', script],
      { cwd: new URL('../../..', import.meta.url).pathname },
    );
    assert.deepEqual(JSON.parse(stdout.trim().split('\n').at(-1) ?? ''), {
      recording: true,
      before: [],
      after: ['resources', 'sdk-trace'],
      kept: ['kept'],
    });
  });
});

const greet = action('desk.greet', {
  input: z.object({ name: z.string(), status: z.number().int().optional() }),
  output: z.object({ text: z.string() }),
});
const quote = action('pricer.quote', {
  input: z.object({ symbol: z.string() }),
  output: z.object({ price: z.number() }),
});
const noted = event('desk.noted', z.object({ note: z.string() }));
const traceContext = action('desk.traceContext', {
  input: z.object({}),
  output: z.object({
    own: z.record(z.string(), z.string()),
    client: z.record(z.string(), z.string()),
    spanId: z.string(),
  }),
});

describe('traces and trace ops actions', () => {
  let node: ChassisNode;
  let unsampled: ChassisNode;
  let base: string;
  let server: Server;
  let serverUrl: string;
  const received: IncomingHttpHeaders[] = [];
  const broker = new MemoryBroker();
  const transport = memoryTransport({ broker });

  before(async () => {
    server = createServer((request, response) => {
      received.push(request.headers);
      const status = Number(new URL(request.url ?? '/', 'http://x').searchParams.get('status') ?? 200);
      response.writeHead(status, { 'content-type': 'application/json' }).end('{"price":12.5}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const services = () => [
      defineService({
        name: 'desk',
        actions: [
          handle(greet, async ({ name, status }, ctx) => {
            const response = await ctx.fetch(`${serverUrl}/quote?status=${status ?? 200}`, {
              headers: { accept: 'application/json' },
            });
            if (!response.ok) throw new Error(`the quote server answered ${response.status}`);
            const { price } = await ctx.call(quote, { symbol: name });
            return { text: `${name} at ${price}` };
          }),
          handle(traceContext, (_input, ctx) => {
            // What a client other than ctx.fetch sends: the context of its own client span.
            const span = ctx.startSpan('GET elsewhere', { kind: SpanKind.CLIENT });
            const client = ctx.traceHeaders(span);
            span.end();
            return { own: ctx.traceHeaders(), client, spanId: span.spanContext().spanId };
          }),
        ],
      }),
      defineService({
        name: 'pricer',
        actions: [handle(quote, () => ({ price: 12.5 }))],
        events: [on(noted, () => undefined)],
      }),
    ];
    node = createNode({
      nodeId: 'traces-node',
      logLevel: 'silent',
      transport: memoryTransport({ broker }),
      opsPort: 0,
      opsHost: '127.0.0.1',
      opsSecret: OPS_SECRET,
      tracing: { sampleRatio: 1 },
      services: services(),
    });
    // The same services, recording nothing it starts: a trace that is not sampled leaves no span.
    unsampled = createNode({
      nodeId: 'traces-unsampled',
      logLevel: 'silent',
      transport: memoryTransport({ broker: new MemoryBroker() }),
      opsPort: 0,
      opsHost: '127.0.0.1',
      opsSecret: OPS_SECRET,
      tracing: { sampleRatio: 0 },
      services: services(),
    });
    await Promise.all([node.start(), unsampled.start(), transport.connect()]);
    base = `http://127.0.0.1:${node.opsPort}`;
  });
  after(async () => {
    await Promise.all([node.stop(), unsampled.stop(), transport.close()]);
    await new Promise((resolve) => server.close(resolve));
  });

  const asOperator = { secret: OPS_SECRET };
  const traceparentOf = (traceId: string, flags: string) => `00-${traceId}-00f067aa0ba902b7-${flags}`;

  it('a call made through ops with a sampled traceparent is found by its trace id, on HTTP and the transport', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const answer = await callOpsHttp(
      base,
      'call',
      { action: 'desk.greet', input: { name: 'ACME' }, traceparent: traceparentOf(traceId, '01') },
      asOperator,
    );
    assert.deepEqual(answer, { text: 'ACME at 12.5' });

    const viaHttp = (await callOpsHttp(base, 'trace', { traceId }, asOperator)) as {
      traceId: string;
      spans: StoredSpan[];
    };
    const viaTransport = await callOps(transport, node.id, 'trace', { traceId }, asOperator);
    assert.deepEqual(viaTransport, viaHttp);
    assert.equal(viaHttp.traceId, traceId);
    const byName = new Map(viaHttp.spans.map((span) => [span.name, span]));
    const call = byName.get('call desk.greet');
    const fetched = viaHttp.spans.find((span) => span.kind === 'client');
    const inner = byName.get('call pricer.quote');
    assert.ok(call && fetched && inner, `spans: ${[...byName.keys()].join(', ')}`);
    assert.equal(call.parentSpanId, '00f067aa0ba902b7');
    assert.equal(call.service, 'desk');
    assert.equal(call.nodeId, node.id);
    assert.equal(call.status, 'unset');
    assert.ok(Number.isFinite(Date.parse(call.startedAt)) && call.durationMs >= 0 && call.startMs > 1.7e12);
    assert.equal(inner.parentSpanId, call.spanId);
    assert.equal(inner.service, 'pricer');
    assert.deepEqual(
      viaHttp.spans.map((span) => span.startMs),
      viaHttp.spans.map((span) => span.startMs).sort((a, b) => a - b),
    );

    // The traced fetch: a client span under the handler's, and its context in the request's traceparent.
    assert.equal(fetched.parentSpanId, call.spanId);
    assert.equal(fetched.service, 'desk');
    assert.equal(fetched.name, `GET ${new URL(serverUrl).host}/quote`);
    assert.equal(fetched.attributes['http.request.method'], 'GET');
    assert.equal(fetched.attributes['url.full'], `${serverUrl}/quote?status=200`);
    assert.equal(fetched.attributes['http.response.status_code'], 200);
    const headers = received.at(-1)!;
    assert.equal(headers.traceparent, `00-${traceId}-${fetched.spanId}-01`);
    assert.equal(headers.accept, 'application/json');

    const listed = (await callOpsHttp(base, 'traces', {}, asOperator)) as TraceSummary[];
    const summary = listed.find((t) => t.traceId === traceId);
    assert.ok(summary);
    assert.equal(summary.root, 'call desk.greet');
    assert.equal(summary.spans, viaHttp.spans.length);
    assert.deepEqual([...summary.services].sort(), ['desk', 'pricer']);
    assert.equal(summary.error, false);
    assert.equal(summary.startedAt, call.startedAt);
  });

  it('an event emitted through ops with a traceparent: its publish and its consumption are in the trace', async () => {
    const traceId = '5bf92f3577b34da6a3ce929d0e0e4737';
    assert.deepEqual(
      await callOpsHttp(
        base,
        'emit',
        { event: 'desk.noted', payload: { note: 'hi' }, traceparent: traceparentOf(traceId, '01') },
        asOperator,
      ),
      { event: 'desk.noted', emitted: true },
    );
    const spans = async () =>
      ((await callOpsHttp(base, 'trace', { traceId }, asOperator)) as { spans: StoredSpan[] }).spans;
    await waitUntil(async () => (await spans()).some((span) => span.kind === 'consumer'), { what: 'the consume span' });
    const [publish, consume] = await spans();
    assert.equal(publish!.name, 'publish desk.noted');
    assert.equal(publish!.kind, 'producer');
    assert.equal(publish!.parentSpanId, '00f067aa0ba902b7');
    assert.equal(consume!.name, 'consume desk.noted');
    assert.equal(consume!.parentSpanId, publish!.spanId);
    assert.equal(consume!.service, 'pricer');
  });

  it('a failed request (a 5xx, a refused connection) is an error span, and so is its trace', async () => {
    const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    await assert.rejects(
      callOpsHttp(
        base,
        'call',
        { action: 'desk.greet', input: { name: 'X', status: 503 }, traceparent: traceparentOf(traceId, '01') },
        asOperator,
      ),
      /503/,
    );
    const { spans } = (await callOpsHttp(base, 'trace', { traceId }, asOperator)) as { spans: StoredSpan[] };
    const fetched = spans.find((span) => span.kind === 'client')!;
    assert.equal(fetched.status, 'error');
    assert.equal(fetched.attributes['http.response.status_code'], 503);
    assert.match(fetched.error ?? '', /503/);
    const listed = (await callOpsHttp(base, 'traces', { service: 'desk', limit: 1 }, asOperator)) as TraceSummary[];
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.traceId, traceId);
    assert.equal(listed[0]!.error, true);

    // Nothing listening: the fetch rejects, its span says why.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = await Tracing.create({ nodeId: 'n', defaultServiceName: 'desk', sampleRatio: 1, env: {} });
    assert.equal(refused.unrecorded(noSpan), undefined);
    const parent = refused.record('handler', SpanKind.SERVER, noSpan, {});
    const { tracedFetch } = await import('../src/node/http-client.ts');
    await assert.rejects(tracedFetch(refused, parent, `http://127.0.0.1:${port}/`, undefined));
    parent.end();
    const [failed] = refused.store!.trace(parent.spanContext().traceId).filter((s) => s.kind === 'client');
    assert.equal(failed!.status, 'error');
    assert.match(failed!.error ?? '', /fetch failed/);
  });

  it('a trace not sampled leaves no span, and its context still goes out with the request', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    await unsampled.call(greet, { name: 'ZED' }, { traceparent: traceparentOf(traceId, '00') });
    await unsampled.call(greet, { name: 'ZED' });
    assert.deepEqual(await callOpsHttp(`http://127.0.0.1:${unsampled.opsPort}`, 'traces', {}, asOperator), []);
    assert.match(String(received.at(-2)!.traceparent), new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
    // A trace started by the node and not sampled: a context of its own, flagged not sampled.
    assert.match(String(received.at(-1)!.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  });

  it('ctx.traceHeaders gives the trace context of a span, for a client other than ctx.fetch', async () => {
    const traceId = 'a3ce929d0e0e47364bf92f3577b34da6';
    const sampled = await node.call(traceContext, {}, { traceparent: traceparentOf(traceId, '01') });
    assert.equal(sampled.client.traceparent, `00-${traceId}-${sampled.spanId}-01`);
    assert.match(String(sampled.own.traceparent), new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    assert.notEqual(sampled.own.traceparent, sampled.client.traceparent);
    // Not sampled: the context still goes out, flagged so.
    const skipped = await unsampled.call(traceContext, {}, { traceparent: traceparentOf(traceId, '00') });
    assert.match(String(skipped.client.traceparent), new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
  });

  it('a trace this node does not hold is empty; bad input is a VALIDATION error; both need credentials', async () => {
    const unknown = await callOpsHttp(base, 'trace', { traceId: 'f'.repeat(32) }, asOperator);
    assert.deepEqual(unknown, { traceId: 'f'.repeat(32), spans: [] });
    for (const [name, input] of [
      ['trace', { traceId: 'NOT-A-TRACE' }],
      ['trace', {}],
      ['traces', { limit: 0 }],
      ['traces', { limit: 501 }],
      ['call', { action: 'desk.greet', input: { name: 'A' }, traceparent: '00-abc-def-01' }],
      ['call', { action: 'desk.greet', input: { name: 'A' }, traceparent: traceparentOf('0'.repeat(32), '01') }],
    ] as const) {
      await assert.rejects(
        callOpsHttp(base, name, input, asOperator),
        (error: unknown) => isChassisError(error, 'VALIDATION') && error.status === 400,
        `${name} ${JSON.stringify(input)}`,
      );
    }
    // GET, as listing actions allow, with the fields as query parameters.
    const response = await fetch(`${base}/ops/traces?limit=2`, { headers: { 'x-chassis-ops-secret': OPS_SECRET } });
    assert.equal(response.status, 200);
    assert.ok(((await response.json()) as unknown[]).length <= 2);
    const bad = await fetch(`${base}/ops/trace?traceId=xyz`, { headers: { 'x-chassis-ops-secret': OPS_SECRET } });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'VALIDATION');
    assert.equal((await fetch(`${base}/ops/traces`)).status, 401);
    await assert.rejects(callOps(transport, node.id, 'traces', {}, {}), (error: unknown) =>
      isChassisError(error, 'UNAUTHENTICATED'),
    );
  });
});
