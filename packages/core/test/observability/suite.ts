import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import {
  action,
  createLogger,
  defineService,
  event,
  handle,
  InMemorySpanExporter,
  type NodeOptions,
  on,
  type ServiceDefinition,
} from '@chassis/core';
import { type TransportTarget, useCluster, waitUntil } from '@chassis/testing';
import { z } from 'zod';
import { parsePrometheusText, promtoolCheck } from './prometheus-text.ts';

/**
 * Observability with no user code: one request through three services (orders → account-transactions,
 * and order_created → market) is one trace with the right parent links, every log line of it carries
 * the same correlation id and trace id, and `/metrics` holds the histograms with the right labels.
 */
export function observabilitySuite(target: TransportTarget): void {
  describe(`observability: ${target.name}`, { skip: target.skip }, () => {
    const cluster = useCluster(target);
    let exporter: InMemorySpanExporter;
    let lines: string[];
    let started = 0;

    beforeEach(() => {
      exporter = new InMemorySpanExporter();
      lines = [];
    });

    /**
     * A node that exports every span to this test's exporter (ratio 1: the trace is recorded whichever
     * node starts it) and writes its log lines to `lines`.
     */
    function startNode(services: ServiceDefinition[], options: Partial<NodeOptions> = {}) {
      const destination = { write: (line: string) => lines.push(line) };
      return cluster.startNode(services, {
        tracing: { exporter, sampleRatio: 1 },
        logger: createLogger({ nodeId: `n${started++}`, level: 'info', destination }),
        ...options,
      });
    }

    function sellOrderServices() {
      const sellShares = action(`orders-${cluster.suffix}.sellShares`, {
        input: z.object({ accountId: z.string(), symbol: z.string(), quantity: z.number().int().positive() }),
        output: z.object({ orderId: z.string() }),
      });
      const requestReservation = action(`account-transactions-${cluster.suffix}.requestReservation`, {
        input: z.object({ orderId: z.string(), quantity: z.number() }),
        output: z.object({ reservationId: z.string() }),
        idempotent: true,
      });
      const orderCreated = event(`orders-${cluster.suffix}.order_created`, z.object({ orderId: z.string() }));
      const placed: string[] = [];
      const orders = defineService({
        name: sellShares.service,
        uses: [requestReservation, orderCreated],
        actions: [
          handle(sellShares, async (input, ctx) => {
            ctx.log.info('accepting a sell order');
            await ctx.call(requestReservation, { orderId: 'o-1', quantity: input.quantity });
            await ctx.emit(orderCreated, { orderId: 'o-1' });
            return { orderId: 'o-1' };
          }),
        ],
      });
      const ledger = defineService({
        name: requestReservation.service,
        actions: [
          handle(requestReservation, (input, ctx) => {
            ctx.log.info({ quantity: input.quantity }, 'reserving shares');
            return { reservationId: 'r-1' };
          }),
        ],
      });
      const market = defineService({
        name: `market-${cluster.suffix}`,
        events: [
          on(orderCreated, (payload, ctx) => {
            ctx.log.info('placing the order on the exchange');
            placed.push(payload.orderId);
          }),
        ],
      });
      return { sellShares, requestReservation, orderCreated, orders, ledger, market, placed };
    }

    it(`[${target.name}] one request through three services is one trace with correct parent links`, async () => {
      const slice = sellOrderServices();
      await startNode([slice.orders]);
      await startNode([slice.ledger]);
      await startNode([slice.market]);
      const gateway = await startNode([]);
      await gateway.call(
        slice.sellShares,
        { accountId: '101', symbol: 'BHP', quantity: 5 },
        { correlationId: 'req-42' },
      );
      await waitUntil(() => slice.placed.length === 1 && exporter.getFinishedSpans().length >= 6, {
        what: 'the six spans of the request',
      });
      const spans = exporter.getFinishedSpans();
      const byName = (name: string) => {
        const found = spans.filter((s) => s.name === name);
        assert.equal(found.length, 1, `one span named ${name}; got ${spans.map((s) => s.name).join(', ')}`);
        return found[0]!;
      };
      const call = byName(`call ${slice.sellShares.name}`);
      const serve = byName(`serve ${slice.sellShares.name}`);
      const innerCall = byName(`call ${slice.requestReservation.name}`);
      const innerServe = byName(`serve ${slice.requestReservation.name}`);
      const publish = byName(`publish ${slice.orderCreated.name}`);
      const consume = byName(`consume ${slice.orderCreated.name}`);
      const traceId = call.spanContext().traceId;
      for (const span of [serve, innerCall, innerServe, publish, consume]) {
        assert.equal(span.spanContext().traceId, traceId, `${span.name} is in the same trace`);
      }
      const parentOf = (span: typeof call) => span.parentSpanContext?.spanId;
      assert.equal(parentOf(call), undefined, 'the first call is the root');
      assert.equal(parentOf(serve), call.spanContext().spanId);
      assert.equal(parentOf(innerCall), serve.spanContext().spanId);
      assert.equal(parentOf(innerServe), innerCall.spanContext().spanId);
      assert.equal(parentOf(publish), serve.spanContext().spanId);
      assert.equal(parentOf(consume), publish.spanContext().spanId);

      const handlerLines = lines
        .map((line) => JSON.parse(line))
        .filter((entry) => /reserving|accepting|placing/.test(entry.msg));
      assert.equal(handlerLines.length, 3);
      for (const entry of handlerLines) {
        assert.equal(entry.correlationId, 'req-42', `"${entry.msg}" carries the correlation id`);
        assert.equal(entry.traceId, traceId, `"${entry.msg}" carries the trace id`);
        assert.match(entry.spanId, /^[0-9a-f]{16}$/);
        assert.match(entry.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'UTC ISO time');
        assert.ok(entry.node && entry.service, 'node and service on every line');
      }
    });

    it(`[${target.name}] /metrics parses as Prometheus text and holds the histograms with the right labels`, async () => {
      const slice = sellOrderServices();
      const orders = await startNode([slice.orders], { opsPort: 0, defaultMetrics: true });
      await startNode([slice.ledger, slice.market]);
      await orders.call(slice.sellShares, { accountId: '101', symbol: 'BHP', quantity: 5 });
      await orders.call(slice.sellShares, { accountId: '101', symbol: 'BHP', quantity: -1 }).catch(() => undefined);
      const response = await fetch(`http://127.0.0.1:${orders.opsPort}/metrics`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await response.text();
      assert.equal(promtoolCheck(text), undefined, 'promtool accepts the exposition');
      const families = parsePrometheusText(text);
      const server = families.get('chassis_rpc_server_duration_seconds');
      assert.equal(server?.type, 'histogram');
      const serverCounts = server!.samples.filter((s) => s.name === 'chassis_rpc_server_duration_seconds_count');
      const label = (outcome: string) =>
        serverCounts.find(
          (s) =>
            s.labels.service === slice.sellShares.service &&
            s.labels.action === 'sellShares' &&
            s.labels.outcome === outcome,
        );
      assert.equal(label('ok')?.value, 1);
      assert.equal(label('VALIDATION')?.value, 1);
      const client = families.get('chassis_rpc_client_duration_seconds');
      assert.ok(
        client?.samples.some(
          (s) =>
            s.name.endsWith('_count') && s.labels.target === slice.requestReservation.name && s.labels.outcome === 'ok',
        ),
      );
      assert.ok(families.get('chassis_events_published_total')?.samples.some((s) => s.value === 1));
      assert.ok(families.has('chassis_circuit_breaker_state'));
      assert.ok(families.has('nodejs_eventloop_lag_seconds'), 'Node default metrics');
      assert.ok(families.has('process_cpu_user_seconds_total'));
    });

    it(`[${target.name}] health: ready only while running with the transport connected; health+json bodies`, async () => {
      const slice = sellOrderServices();
      let databaseUp = true;
      const node = await startNode([slice.ledger], {
        opsPort: 0,
        checks: {
          'database:connection': () => (databaseUp ? { status: 'pass' } : { status: 'fail', output: 'refused' }),
        },
      });
      const get = async (path: string) => {
        const response = await fetch(`http://127.0.0.1:${node.opsPort}${path}`);
        assert.equal(response.headers.get('content-type'), 'application/health+json');
        return {
          status: response.status,
          body: (await response.json()) as {
            status: string;
            checks: Record<string, { status: string; durationMs: number }[]>;
          },
        };
      };
      const ready = await get('/health/ready');
      assert.equal(ready.status, 200);
      assert.equal(ready.body.status, 'pass');
      assert.deepEqual(Object.keys(ready.body.checks).sort(), [
        'circuit-breakers',
        'database:connection',
        'node:state',
        'transport:connection',
      ]);
      for (const [entry] of Object.values(ready.body.checks)) assert.equal(typeof entry?.durationMs, 'number');
      databaseUp = false;
      const down = await get('/health/ready');
      assert.equal(down.status, 503);
      assert.equal(down.body.status, 'fail');
      assert.equal(down.body.checks['database:connection']?.[0]?.status, 'fail');
      assert.equal((await get('/health/live')).status, 200, 'a failing dependency does not make the node dead');
      const report = await node.readiness();
      assert.equal(report.checks['node:state']?.[0]?.status, 'pass');
      const stopping = node.stop();
      assert.equal((await node.readiness()).checks['node:state']?.[0]?.status, 'fail', 'not ready while draining');
      await stopping;
    });
  });
}
