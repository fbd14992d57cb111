import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { action, createNode, defineService, handle } from '@chassis/core';
import { reachable } from '@chassis/testing';
import Moleculer from 'moleculer';
import { connect } from 'nats';
import { benchConcurrencies, benchDurationMs, benchRounds, benchWarmupMs } from './harness.ts';
import { compareCycles, formatSpread, pairedMode, pairedSettings, verdict } from './paired.ts';
import { sellOrder, sellOrderParams, sellOrderSchema } from './sell-order.ts';
import {
  type Contender,
  exitWhenDone,
  flushMoleculerSpans,
  runSideBySide,
  type SideBySideResult,
  selectContenders,
} from './side-by-side.ts';

/**
 * RPC over NATS, side by side, in one run against one local nats-server: raw nats.js (the floor),
 * Moleculer 0.14 with its NATS transporter (bare, the baseline, and with its validator, metrics and
 * tracing on), and Chassis with its NATS transport. Each echoes a small sell order back, at concurrency 1
 * and 64. By default all four are up at once and take turns in paired slices (`BENCH_PAIRED=0`: one
 * after another, in rounds). See ../README.md for how to read the tables.
 */

const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const WARMUP_MS = benchWarmupMs(1000);
const DURATION_MS = benchDurationMs(5);
const CONCURRENCIES = benchConcurrencies('1,64');
const ROUNDS = benchRounds(1);
/**
 * Paired by default: measured one after another, the contenders' ratio moved from 0.82× to 1.36× between
 * rounds of one run here, as other work on the machine came and went; paired slices see the same machine.
 */
const PAIRED = pairedMode(true) ? pairedSettings({ sliceMs: 300, cycles: 40 }) : undefined;
const BASELINE = 'moleculer';
/** The goal of issue 11: Chassis at least bare Moleculer's throughput, at every concurrency. */
const GOAL_RATIO = 1;

const payload = sellOrder;
type Payload = typeof payload;

/** Runs of this benchmark never see each other's subjects, services or namespaces. */
const suffix = Math.random().toString(36).slice(2, 8);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const rawNats: Contender = {
  name: 'raw-nats',
  description:
    'nats.js 2.x: nc.request (noAsyncTraces) to a queue-group subscriber on another connection; JSON both ways',
  async start() {
    const subject = `bench.echo.${suffix}`;
    const server = await connect({ servers: NATS_URL, name: 'bench-raw-server' });
    // Parses and re-encodes, as every RPC framework's server does with a JSON body.
    server.subscribe(subject, {
      queue: 'bench-echo',
      callback: (error, msg) => {
        if (error) return;
        msg.respond(encoder.encode(JSON.stringify(JSON.parse(decoder.decode(msg.data)))));
      },
    });
    await server.flush();
    // noAsyncTraces: by default nats.js 2.x makes an Error per request to keep the caller's stack for a
    // failure, which costs about a third of the throughput at concurrency 64; the floor goes without.
    const client = await connect({ servers: NATS_URL, name: 'bench-raw-client', noAsyncTraces: true });
    const require = createRequire(import.meta.url);
    const { version } = require('nats/package.json') as { version: string };
    return {
      call: async () => {
        const reply = await client.request(subject, encoder.encode(JSON.stringify(payload)), { timeout: 5000 });
        return JSON.parse(decoder.decode(reply.data)) as Payload;
      },
      close: async () => {
        await client.drain();
        await server.drain();
      },
      notes: { nats: version, server: server.info?.version },
    };
  },
};

/**
 * Moleculer 0.14 with its NATS transporter. Bare (the baseline the goal is set against): validator,
 * metrics and tracing off. With features: closer to what Chassis does on every call as it ships — its
 * validator on the request (Chassis also checks the answer), its metrics, and every call traced to the
 * Event exporter (Chassis records 1 call in 10 by default). The local-call benchmark compares the same two.
 */
function moleculerContender(name: string, features: boolean): Contender {
  return {
    name,
    description: features
      ? 'Moleculer 0.14 NATS transporter, JSON serializer; fastest-validator params, metrics (no reporter), tracing to the Event exporter'
      : 'Moleculer 0.14 NATS transporter, JSON serializer; metrics, tracing and validator off',
    async start() {
      const options: Moleculer.BrokerOptions = {
        namespace: `bench-${name}-${suffix}`,
        transporter: { type: 'NATS', options: { url: NATS_URL } },
        serializer: 'JSON',
        logger: false,
        validator: features,
        metrics: features ? { enabled: true, collectProcessMetrics: false } : false,
        tracing: features ? { enabled: true, exporter: { type: 'Event', options: { interval: 5 } } } : false,
        // Chassis gives every call a deadline; so does this, for a like-for-like comparison.
        requestTimeout: 5000,
      };
      const server = new Moleculer.ServiceBroker({ ...options, nodeID: `bench-server-${suffix}` });
      server.createService({
        name: 'echo',
        actions: {
          echo: features
            ? { params: sellOrderParams, handler: (ctx: Moleculer.Context<Payload>) => ctx.params }
            : (ctx: Moleculer.Context<Payload>) => ctx.params,
        },
      });
      const client = new Moleculer.ServiceBroker({ ...options, nodeID: `bench-client-${suffix}` });
      await server.start();
      await client.start();
      await client.waitForServices('echo', 10_000);
      return {
        call: () => client.call<Payload, Payload>('echo.echo', payload),
        close: async () => {
          await client.stop();
          await server.stop();
        },
        ...(features ? { flush: () => flushMoleculerSpans(client, server) } : {}),
        notes: {
          moleculer: Moleculer.MOLECULER_VERSION,
          requestTimeout: options.requestTimeout,
          validator: features,
          metrics: features,
          tracing: features ? 'Event exporter, every 5 s' : false,
        },
      };
    },
  };
}

const moleculer = moleculerContender('moleculer', false);
const moleculerWithFeatures = moleculerContender('moleculer-features', true);

const chassis: Contender = {
  name: 'chassis',
  description: 'Chassis: two nodes on natsTransport, zod contract, node.call; default options, logs silent',
  async start() {
    // Loaded here, not at the top, so the other contenders still run if the NATS transport is broken.
    const { natsTransport } = await import('@chassis/core/nats');
    const service = `bench-echo-${suffix}`;
    const echo = action(`${service}.echo`, { input: sellOrderSchema, output: sellOrderSchema, idempotent: true });
    const server = createNode({
      services: [defineService({ name: service, actions: [handle(echo, (input) => input)] })],
      transport: natsTransport({ url: NATS_URL }),
      logLevel: 'silent',
    });
    const client = createNode({ services: [], transport: natsTransport({ url: NATS_URL }), logLevel: 'silent' });
    await server.start();
    try {
      await client.start();
    } catch (error) {
      await server.stop();
      throw error;
    }
    const manifest = JSON.parse(
      await readFile(new URL('../../packages/core/package.json', import.meta.url), 'utf8'),
    ) as { version: string };
    return {
      call: () => client.call(echo, payload),
      close: async () => {
        await client.stop();
        await server.stop();
      },
      notes: { core: manifest.version, validateOutput: process.env.NODE_ENV !== 'production' },
    };
  },
};

async function main(): Promise<number> {
  const contenders = selectContenders('rpc-nats', [rawNats, moleculer, moleculerWithFeatures, chassis]);
  if (!contenders) return 0;
  if (!(await reachable({ name: 'NATS', url: NATS_URL, port: 4222 }))) {
    console.error(`NATS is not reachable at ${NATS_URL}. Start nats-server (or set BENCH_NATS_URL) and run again.`);
    return 1;
  }
  console.log(
    `rpc-nats: ${contenders.map((c) => c.name).join(', ')} at concurrency ${CONCURRENCIES.join(', ')}; ` +
      (PAIRED
        ? `all up at once; warm-up ${WARMUP_MS} ms, then ${PAIRED.cycles} cycles of paired ${PAIRED.sliceMs} ms slices`
        : `one after another; warm-up ${WARMUP_MS} ms, ${DURATION_MS} ms measured each`) +
      `; ${NATS_URL}`,
  );
  const result = await runSideBySide({
    benchmark: 'rpc-nats',
    contenders,
    concurrencies: CONCURRENCIES,
    warmupMs: WARMUP_MS,
    durationMs: DURATION_MS,
    rounds: ROUNDS,
    baseline: BASELINE,
    expected: payload,
    settings: { natsUrl: NATS_URL, payload },
    ...(PAIRED ? { paired: PAIRED } : {}),
  });
  printGoal(result);
  return result.failures.length > 0 ? 1 : 0;
}

/**
 * Whether Chassis met the goal at each concurrency: paired, the median of the per-cycle ratios; and,
 * paired, Chassis against Moleculer with features cycle by cycle, the peer doing work like Chassis's.
 */
function printGoal({ rows, paired, cycles: series }: SideBySideResult): void {
  for (const c of compareCycles(series ?? [], 'moleculer-features').filter((c) => c.name === 'chassis')) {
    console.log(
      `chassis ÷ moleculer-features at ${c.concurrency}, median (quartiles) of ${c.throughput.count} cycles: ` +
        `${formatSpread(c.throughput)} by throughput, CPU a call ${formatSpread(c.cpuPerCall)}`,
    );
  }
  for (const concurrency of CONCURRENCIES) {
    const row = rows.find((r) => r.name === 'chassis' && r.concurrency === concurrency);
    if (row?.ratio === undefined) continue;
    const cycles = paired?.find((p) => p.name === 'chassis' && p.concurrency === concurrency);
    console.log(
      `goal chassis ≥ ${GOAL_RATIO.toFixed(1)}× ${BASELINE} at ${concurrency}: ` +
        (cycles
          ? `${formatSpread(cycles.throughput, 3)} by throughput, median (quartiles) of ${cycles.throughput.count} cycles — ` +
            `${verdict(cycles.throughput, GOAL_RATIO)}; CPU a call ${formatSpread(cycles.cpuPerCall)} ${BASELINE}'s`
          : `${row.ratio.toFixed(2)}× by throughput — ${row.ratio >= GOAL_RATIO ? 'met' : 'not met'}`),
    );
  }
}

exitWhenDone(await main());
