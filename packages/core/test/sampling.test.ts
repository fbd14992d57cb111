import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import {
  action,
  type ChassisNode,
  createLogger,
  createNode,
  defineService,
  handle,
  InMemorySpanExporter,
  MemoryBroker,
  memoryTransport,
  type NodeOptions,
} from '@chassis/core';
import { z } from 'zod';

const quote = action('pricing.quote', {
  input: z.object({ symbol: z.string() }),
  output: z.object({ price: z.string() }),
  idempotent: true,
});
const pricing = defineService({
  name: 'pricing',
  actions: [
    handle(quote, (_input, ctx) => {
      ctx.log.info('quoting');
      return { price: '91.72' };
    }),
  ],
});

const sampledParent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const unsampledParent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

describe('trace sampling: spans recorded only for sampled traces, trace context carried for all', () => {
  const nodes: ChassisNode[] = [];
  afterEach(async () => {
    await Promise.allSettled(nodes.splice(0).map((node) => node.stop()));
  });

  /**
   * A node serving `pricing` to itself through the memory transport (so a call has a client and a server
   * span), keeping the headers of every request it sends and every log line it writes.
   */
  async function start(options: Partial<NodeOptions> = {}) {
    const exporter = new InMemorySpanExporter();
    const transport = memoryTransport({ broker: new MemoryBroker() });
    const sent: Record<string, string>[] = [];
    const request = transport.request.bind(transport);
    transport.request = (service, action, message, requestOptions) => {
      sent.push({ ...message.headers });
      return request(service, action, message, requestOptions);
    };
    const lines: { msg: string; traceId?: string }[] = [];
    const node = createNode({
      services: [pricing],
      transport,
      localCalls: false,
      logger: createLogger({
        nodeId: 'n1',
        destination: { write: (line: string) => lines.push(JSON.parse(line)) },
      }),
      ...options,
      tracing: { exporter, ...options.tracing },
    });
    nodes.push(node);
    await node.start();
    const spans = async () => {
      await new Promise((resolve) => setImmediate(resolve));
      return exporter.getFinishedSpans();
    };
    return { node, sent, lines, spans };
  }

  it('ratio 1 records a trace it starts; ratio 0 records none, yet carries a trace id to the next hop and the logs', async () => {
    const all = await start({ tracing: { sampleRatio: 1 } });
    await all.node.call(quote, { symbol: 'BHP' });
    assert.deepEqual((await all.spans()).map((s) => s.name).sort(), ['call pricing.quote', 'serve pricing.quote']);
    assert.match(all.sent[0]!.traceparent ?? '', /-01$/);

    const none = await start({ tracing: { sampleRatio: 0 } });
    await none.node.call(quote, { symbol: 'BHP' });
    assert.deepEqual(await none.spans(), [], 'no span recorded');
    const [, traceId, , flags] = traceparentPattern.exec(none.sent[0]!.traceparent ?? '') ?? [];
    assert.ok(traceId, `a traceparent was sent: ${JSON.stringify(none.sent[0])}`);
    assert.equal(flags, '00', 'the next hop is told the trace is not sampled');
    const quoting = none.lines.find((line) => line.msg === 'quoting');
    assert.equal(quoting?.traceId, traceId, 'the handler’s log line names the trace');
  });

  it('a ratio between records about that share of the traces the node starts', async () => {
    const half = await start({ tracing: { sampleRatio: 0.5 }, localCalls: true });
    for (let i = 0; i < 400; i++) await half.node.call(quote, { symbol: 'BHP' });
    const recorded = (await half.spans()).length; // a local call is one span
    assert.ok(recorded > 140 && recorded < 260, `${recorded} of 400 recorded at ratio 0.5`);
  });

  it('the id of a trace it starts reads as its sampling decision to TraceIdRatioBased, sampled or not', async () => {
    const half = await start({ tracing: { sampleRatio: 0.5 } });
    for (let i = 0; i < 200; i++) await half.node.call(quote, { symbol: 'BHP' });
    // OpenTelemetry's TraceIdRatioBased: the id's four 32-bit words xor-ed, below the ratio's bound.
    const bound = Math.floor(0.5 * 0xffffffff);
    const flagsSeen = new Set<string>();
    for (const headers of half.sent) {
      const [, traceId, , flags] = traceparentPattern.exec(headers.traceparent ?? '') ?? [];
      assert.ok(traceId && flags, `a traceparent was sent: ${JSON.stringify(headers)}`);
      assert.notEqual(traceId, '0'.repeat(32));
      let xor = 0;
      for (let i = 0; i < 32; i += 8) xor = (xor ^ Number.parseInt(traceId.slice(i, i + 8), 16)) >>> 0;
      assert.equal(xor < bound, flags === '01', `trace ${traceId} flagged ${flags}`);
      flagsSeen.add(flags);
    }
    assert.deepEqual([...flagsSeen].sort(), ['00', '01']);
  });

  it('a trace that arrives with a context follows the caller’s decision, whatever the ratio', async () => {
    const never = await start({ tracing: { sampleRatio: 0 } });
    await never.node.call(quote, { symbol: 'BHP' }, { traceparent: sampledParent });
    const spans = await never.spans();
    assert.deepEqual(spans.map((s) => s.name).sort(), ['call pricing.quote', 'serve pricing.quote']);
    const call = spans.find((s) => s.name === 'call pricing.quote')!;
    assert.equal(call.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c');
    assert.equal(call.parentSpanContext?.spanId, 'b7ad6b7169203331');

    const always = await start({ tracing: { sampleRatio: 1 } });
    await always.node.call(quote, { symbol: 'BHP' }, { traceparent: unsampledParent });
    assert.deepEqual(await always.spans(), [], 'an unsampled caller’s trace is not recorded');
    assert.equal(always.sent[0]!.traceparent, unsampledParent, 'its context passes on as it came');
    assert.equal(always.lines.find((line) => line.msg === 'quoting')?.traceId, '0af7651916cd43dd8448eb211c80319c');
  });

  it('OTEL_TRACES_SAMPLER chooses the sampler; one Chassis does not know fails the start with CONFIG', async () => {
    const saved = { sampler: process.env.OTEL_TRACES_SAMPLER, arg: process.env.OTEL_TRACES_SAMPLER_ARG };
    try {
      process.env.OTEL_TRACES_SAMPLER = 'always_off';
      const off = await start();
      await off.node.call(quote, { symbol: 'BHP' }, { traceparent: sampledParent });
      assert.deepEqual(await off.spans(), [], 'always_off ignores the caller’s decision');

      process.env.OTEL_TRACES_SAMPLER = 'parentbased_traceidratio';
      process.env.OTEL_TRACES_SAMPLER_ARG = '1';
      const on = await start();
      await on.node.call(quote, { symbol: 'BHP' });
      assert.equal((await on.spans()).length, 2);

      process.env.OTEL_TRACES_SAMPLER = 'jaeger_remote';
      await assert.rejects(start(), (error: { code?: string; message: string }) => {
        assert.equal(error.code, 'CONFIG');
        assert.match(error.message, /parentbased_traceidratio/);
        return true;
      });
    } finally {
      for (const [key, value] of [
        ['OTEL_TRACES_SAMPLER', saved.sampler],
        ['OTEL_TRACES_SAMPLER_ARG', saved.arg],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});
