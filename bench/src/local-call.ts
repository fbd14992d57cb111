import { readFile } from 'node:fs/promises';
import { action, createNode, defineService, handle, type SpanExporter } from '@chassis/core';
import Moleculer from 'moleculer';
import { benchConcurrencies, benchDurationMs, benchRounds, formatTable, type RatedMeasurement } from './harness.ts';
import { formatSpread, verdict as goalVerdict, inverse, pairedMode, pairedSettings } from './paired.ts';
import { type SellOrder, sellOrder, sellOrderParams, sellOrderSchema } from './sell-order.ts';
import { type Contender, exitWhenDone, flushMoleculerSpans, runSideBySide, selectContenders } from './side-by-side.ts';

/**
 * A call to a service on the same node, side by side in one process: Chassis as it ships (the input and
 * output validated, metrics, spans, a deadline), Moleculer 0.14 with its validator, metrics and tracing
 * on, and Moleculer bare. Each echoes the sell order back, one call after another. See ../README.md.
 */

const WARMUP_MS = 1000;
/** 5 s: Moleculer's Event exporter keeps its spans for 5 s, so that every window holds one of its flushes. */
const DURATION_MS = benchDurationMs(5);
/** A local call is CPU alone, so whatever else runs on the machine shows in it: the best of 3 rounds. */
const ROUNDS = benchRounds(3);
/** Sequential by default: calls that never wait gain nothing from concurrency but the harness's own work. */
const CONCURRENCIES = benchConcurrencies('1', 'BENCH_LOCAL_CONCURRENCY');
/**
 * Rounds by default: the goal here is met by a wide margin, and a 5 s window holds one of Moleculer's
 * span flushes as it runs in production. `BENCH_PAIRED=1` measures in paired slices as rpc-nats does,
 * Moleculer's spans then flushed at the end of each of its slices.
 */
const PAIRED = pairedMode(false) ? pairedSettings({ sliceMs: 300, cycles: 30 }) : undefined;
const BASELINE = 'moleculer';
/** The goal of issue 11: Chassis at least this many times Moleculer-with-features' throughput. */
const GOAL_RATIO = 3;
/** Every call gets a deadline in Chassis (5 s by default); Moleculer gets the same as its request timeout. */
const TIMEOUT_MS = 5000;

/**
 * An OpenTelemetry exporter that drops what it is given: spans are still made, ended and batched by
 * the node's BatchSpanProcessor as for OTLP (a batch whenever 512 are queued), but nothing is
 * serialized or sent. The least a real
 * exporter costs, as Moleculer's Event exporter (spans queued, emitted in-process every 5 s) is for it.
 */
const discardingExporter: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: async () => {},
};

/** The harness's own cost per call: a call that does nothing but answer. */
const noop: Contender = {
  name: 'no-op',
  description: 'a function returning a resolved promise: what the harness itself costs per call',
  async start() {
    const answer = Promise.resolve(sellOrder);
    return { call: () => answer, close: async () => {}, notes: {} };
  },
};

function moleculerContender(name: string, features: boolean): Contender {
  return {
    name,
    description: features
      ? 'Moleculer 0.14, no transporter: fastest-validator params schema, metrics (no reporter), tracing to the Event exporter'
      : 'Moleculer 0.14, no transporter: validator, metrics and tracing off',
    async start() {
      const options: Moleculer.BrokerOptions = {
        nodeID: `bench-local-${name}`,
        logger: false,
        // Like Chassis's deadline: Moleculer's Timeout middleware then puts a timer on every call.
        requestTimeout: TIMEOUT_MS,
        validator: features,
        // No reporter, as a Chassis node without `opsPort` collects its metrics and serves none; process
        // metrics off, as `createNode`'s `defaultMetrics` is.
        metrics: features ? { enabled: true, collectProcessMetrics: false } : false,
        // Every action span sampled (rate 1, the default), queued and emitted as `$tracing.spans` every 5 s.
        tracing: features ? { enabled: true, exporter: { type: 'Event', options: { interval: 5 } } } : false,
      };
      const broker = new Moleculer.ServiceBroker(options);
      broker.createService({
        name: 'echo',
        actions: {
          echo: {
            // The same checks as the zod contract of the Chassis contender.
            params: sellOrderParams,
            handler: (ctx: Moleculer.Context<SellOrder>) => ctx.params,
          },
        },
      });
      await broker.start();
      return {
        call: () => broker.call<SellOrder, SellOrder>('echo.echo', sellOrder),
        close: () => broker.stop(),
        ...(features ? { flush: () => flushMoleculerSpans(broker) } : {}),
        notes: {
          moleculer: Moleculer.MOLECULER_VERSION,
          requestTimeout: TIMEOUT_MS,
          validator: features,
          metrics: features,
          tracing: features ? 'Event exporter, every 5 s' : false,
        },
      };
    },
  };
}

/** Where a Chassis contender's spans go: exported (and stored), only to its span store, or nowhere. */
type Spans = 'exported' | 'stored' | 'none';

const spanDescriptions: Record<Spans, string> = {
  exported:
    'Chassis as it ships, one node, memory transport: zod contract in and out, metrics, one span per sampled call (default 1 in 10, OTEL_TRACES_SAMPLER_ARG) exported (batched, discarded), a 5 s deadline',
  stored:
    "the same with its default tracing: no exporter, sampled spans kept only in the node's span store (recorded without the OpenTelemetry SDK)",
  none: 'the same without a span exporter or span store (OTEL_EXPORTER_OTLP_ENDPOINT unset, CHASSIS_TRACE_KEEP=0): spans not recorded, trace context passed on',
};

function chassisContender(name: string, spans: Spans): Contender {
  return {
    name,
    description: spanDescriptions[spans],
    async start() {
      const echo = action('echo.echo', { input: sellOrderSchema, output: sellOrderSchema, idempotent: true });
      const node = createNode({
        services: [defineService({ name: 'echo', actions: [handle(echo, (input) => input)] })],
        logLevel: 'silent',
        callTimeoutMs: TIMEOUT_MS,
        tracing: spans === 'exported' ? { exporter: discardingExporter } : spans === 'stored' ? {} : { keepSpans: 0 },
      });
      await node.start();
      const manifest = JSON.parse(
        await readFile(new URL('../../packages/core/package.json', import.meta.url), 'utf8'),
      ) as { version: string };
      return {
        call: () => node.call(echo, sellOrder),
        close: () => node.stop(),
        notes: {
          core: manifest.version,
          validateOutput: process.env.NODE_ENV !== 'production',
          spans: {
            exported: 'the span store, and BatchSpanProcessor to a discarding exporter',
            stored: 'the span store only',
            none: 'not recorded',
          }[spans],
        },
      };
    },
  };
}

/**
 * What one call costs, per contender: wall time (1 / throughput, and the median call), and this
 * process's CPU time per call with the baseline's as a multiple of it — the figure a loaded machine
 * disturbs least.
 */
function costTable(rows: readonly RatedMeasurement[]): string {
  const us = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? 'n/a' : value.toFixed(2));
  return formatTable([
    ['contender', 'concurrency', 'µs a call', 'p50 µs', 'CPU µs a call', `CPU of ${BASELINE} ÷ CPU`],
    ...rows.map((row) => {
      const base = rows.find((b) => b.name === BASELINE && b.concurrency === row.concurrency);
      const cheaper =
        base?.cpuUsPerOp === undefined || row.cpuUsPerOp === undefined ? undefined : base.cpuUsPerOp / row.cpuUsPerOp;
      return [
        row.name,
        String(row.concurrency),
        us(1e6 / row.opsPerSec),
        us(row.p50Ms * 1000),
        us(row.cpuUsPerOp),
        cheaper === undefined ? 'n/a' : `${cheaper.toFixed(2)}×`,
      ];
    }),
  ]);
}

async function main(): Promise<number> {
  const contenders = selectContenders('local-call', [
    noop,
    moleculerContender('moleculer-bare', false),
    moleculerContender('moleculer', true),
    chassisContender('chassis-no-spans', 'none'),
    chassisContender('chassis-store', 'stored'),
    chassisContender('chassis', 'exported'),
  ]);
  if (!contenders) return 0;
  console.log(
    `local-call: ${contenders.map((c) => c.name).join(', ')} at concurrency ${CONCURRENCIES.join(', ')}; ` +
      (PAIRED
        ? `all at once; warm-up ${WARMUP_MS} ms, then ${PAIRED.cycles} cycles of paired ${PAIRED.sliceMs} ms slices`
        : `warm-up ${WARMUP_MS} ms, ${DURATION_MS} ms measured each, best of ${ROUNDS} rounds`),
  );
  const { rows, paired, failures } = await runSideBySide({
    benchmark: 'local-call',
    contenders,
    concurrencies: CONCURRENCIES,
    warmupMs: WARMUP_MS,
    durationMs: DURATION_MS,
    rounds: ROUNDS,
    baseline: BASELINE,
    expected: sellOrder,
    settings: { payload: sellOrder, timeoutMs: TIMEOUT_MS, nodeEnv: process.env.NODE_ENV ?? null },
    ...(PAIRED ? { paired: PAIRED } : {}),
  });

  console.log('');
  console.log(costTable(rows));
  const goal = rows.filter((row) => row.name === 'chassis');
  const baseline = (concurrency: number) => rows.find((b) => b.name === BASELINE && b.concurrency === concurrency);
  for (const row of goal) {
    const base = baseline(row.concurrency);
    if (!base) continue;
    const cycles = paired?.find((p) => p.name === 'chassis' && p.concurrency === row.concurrency);
    if (cycles) {
      // The goal's CPU ratio is the baseline's over Chassis's: the inverse of the per-cycle ratio.
      const cheaper = inverse(cycles.cpuPerCall);
      console.log(
        `goal chassis ≥ ${GOAL_RATIO}× moleculer with features, at ${row.concurrency}, median (quartiles) of ${cheaper.count} cycles: ` +
          `by throughput ${formatSpread(cycles.throughput)} (${goalVerdict(cycles.throughput, GOAL_RATIO)}), ` +
          `by CPU per call ${formatSpread(cheaper)} (${goalVerdict(cheaper, GOAL_RATIO)})`,
      );
      continue;
    }
    const byThroughput = row.opsPerSec / base.opsPerSec;
    const byCpu = base.cpuUsPerOp! / row.cpuUsPerOp!;
    const verdict = (ratio: number) => `${ratio.toFixed(2)}× (${ratio >= GOAL_RATIO ? 'met' : 'not met'})`;
    console.log(
      `goal chassis ≥ ${GOAL_RATIO}× moleculer with features, at ${row.concurrency}: ` +
        `by throughput ${verdict(byThroughput)}, by CPU per call ${verdict(byCpu)}`,
    );
  }
  return failures.length > 0 ? 1 : 0;
}

exitWhenDone(await main());
