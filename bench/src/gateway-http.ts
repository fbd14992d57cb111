import { fork, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { ChassisError, createNode, jwtVerifier, MemoryBroker, memoryTransport, signToken } from '@chassis/core';
import { createGateway, route } from '@chassis/gateway';
import Fastify from 'fastify';
import {
  benchConcurrencies,
  benchDurationMs,
  benchRounds,
  bestRounds,
  type Measurement,
  measure,
  type RatedMeasurement,
  ratioTable,
  withRatios,
  writeResults,
} from './harness.ts';
import { getPrice, marketData, PRICES } from './market-data-service.ts';
import {
  type CycleSeries,
  compareCycles,
  formatSpread,
  type PairedComparison,
  pairedMode,
  pairedSettings,
  pairedTable,
  rotated,
  spread,
  verdict,
} from './paired.ts';
import { processCpuSeconds } from './process-cpu.ts';

/**
 * The gateway's own cost over HTTP, in one run on loopback: bare Fastify answering `GET /prices/:symbol`
 * from a handler, the Chassis gateway answering the same route through an action on the memory transport,
 * and the gateway again with a bearer token verified on the way in (and again by the service). The
 * servers run in a child process and the load comes from outside it (wrk if installed, else node:http
 * with keep-alive in this process), so the two never share an event loop. By default the contenders take
 * turns in short paired runs, cycle after cycle (`BENCH_PAIRED=0`: rounds). See ../README.md.
 */

const WARMUP_MS = 1000;
const DURATION_MS = benchDurationMs(5);
const CONCURRENCIES = benchConcurrencies('1,32');
/**
 * Rounds of every contender, one after another: at 32 connections one run of the same code has measured
 * anywhere from 0.4× to 0.67× of Fastify on this machine, so the table shows each one's best round and
 * the spread of the gateway's ratio over the rounds is printed beside it.
 */
const ROUNDS = benchRounds(3);
/**
 * Paired by default: short runs of each contender in turn, the order rotating every cycle, and the ratio
 * read cycle by cycle — a run of each a few seconds apart sees the same machine, where rounds did not
 * (0.53× to 1.19× at 32 connections in one run). wrk takes whole seconds: slices of 2 s.
 */
const PAIRED = pairedMode(true) ? pairedSettings({ sliceMs: 2000, cycles: 12 }) : undefined;
/** Comma-separated contender names to run, in that order; all by default. */
const ONLY = process.env.BENCH_ONLY?.split(',').map((name) => name.trim());
const BASELINE = 'fastify';
/** Set in the child process that runs the servers. */
const SERVERS_ROLE = 'BENCH_GATEWAY_SERVERS';
/** The gateway's goal: at least this share of bare Fastify's throughput. */
const GOAL_RATIO = 0.7;

const SECRET = 'bench-gateway-secret-at-least-32-characters';
const expected = { symbol: 'BHP', price: PRICES.BHP };

// ---------------------------------------------------------------------------------------------------
// The servers, in a child process

interface ServerAddresses {
  fastify: string;
  gateway: string;
  gatewayAuth: string;
  /** A bearer token the authenticated gateway accepts. */
  token: string;
  versions: { fastify: string };
}

type ToServers = { type: 'stop' };
type FromServers = { type: 'ready'; addresses: ServerAddresses } | { type: 'stopped' };

function edgeOnlyPrice(symbol: string) {
  const price = PRICES[symbol];
  if (!price) throw new ChassisError('NOT_FOUND', `No price for ${symbol}`);
  return { symbol, price };
}

async function serve(): Promise<void> {
  const send = (message: FromServers) => process.send?.(message);
  const listen = { port: 0, host: '127.0.0.1' };

  const bare = Fastify({ logger: false });
  bare.get<{ Params: { symbol: string } }>('/prices/:symbol', async (req, reply) => {
    const price = PRICES[req.params.symbol];
    if (!price) return reply.status(404).send({ error: `No price for ${req.params.symbol}` });
    return { symbol: req.params.symbol, price };
  });

  // As an edge node would run: its own broker, logs silent, no rate limit (it would refuse the load).
  const publicNode = createNode({
    services: [marketData],
    transport: memoryTransport({ broker: new MemoryBroker() }),
    logLevel: 'silent',
  });
  await publicNode.start();
  const gateway = await createGateway({
    node: publicNode,
    routes: [
      route.get('/prices/:symbol', getPrice, { auth: 'public' }),
      // The edge alone — request id, deadline, metrics, error shape — answering without an action: it
      // splits the gateway's cost into its own and the action call's.
      route.custom('GET', '/edge-only/:symbol', async ({ request }) => edgeOnlyPrice(request.params.symbol ?? ''), {
        auth: 'public',
      }),
    ],
    rateLimit: false,
  });

  // The service verifies the token again, as every Chassis service does: that is part of the cost.
  const verifier = jwtVerifier({ secret: SECRET });
  const authNode = createNode({
    services: [marketData],
    transport: memoryTransport({ broker: new MemoryBroker() }),
    logLevel: 'silent',
    identity: verifier,
  });
  await authNode.start();
  const gatewayAuth = await createGateway({
    node: authNode,
    routes: [route.get('/prices/:symbol', getPrice, { auth: { roles: ['customer'] } })],
    auth: verifier,
    rateLimit: false,
  });

  const addresses: ServerAddresses = {
    fastify: await bare.listen(listen),
    gateway: await gateway.listen(listen),
    gatewayAuth: await gatewayAuth.listen(listen),
    token: await signToken(SECRET, { sub: 'alice', roles: ['customer'] }, { expiresInSeconds: 3600 }),
    versions: { fastify: bare.version },
  };
  send({ type: 'ready', addresses });

  process.on('message', async (message: ToServers) => {
    if (message.type !== 'stop') return;
    await bare.close();
    await gateway.close();
    await gatewayAuth.close();
    await publicNode.stop();
    await authNode.stop();
    send({ type: 'stopped' });
    process.disconnect();
  });
}

// ---------------------------------------------------------------------------------------------------
// Load generators

interface Target {
  url: string;
  headers: Record<string, string>;
}

interface RunWindow {
  warmupMs: number;
  durationMs: number;
  log: (line: string) => void;
}

const sequentialWindow: RunWindow = {
  warmupMs: WARMUP_MS,
  durationMs: DURATION_MS,
  log: (line) => console.log(line),
};

interface LoadGenerator {
  name: string;
  description: string;
  /**
   * A warm-up (none if `warmupMs` is 0), then a measured run. `serverCpuSeconds` reads the server
   * process's CPU time so far (every thread), for CPU per request; `log` takes the progress lines.
   */
  run(
    name: string,
    concurrency: number,
    target: Target,
    serverCpuSeconds: () => number,
    window: RunWindow,
  ): Promise<Measurement>;
  close(): void;
}

/** Closed-loop workers over node:http with a keep-alive agent: one socket per worker, reused. */
function nodeClient(): LoadGenerator {
  const agents: Agent[] = [];
  return {
    name: 'node',
    description: 'node:http in the main thread, keep-alive Agent with one socket per worker; bench/src/harness.ts',
    async run(name, concurrency, target, serverCpuSeconds, window) {
      const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
      agents.push(agent);
      const callOnce = () =>
        new Promise<void>((resolve, reject) => {
          const outgoing = request(target.url, { agent, headers: target.headers }, (response) => {
            // The body is read to the end so the socket can serve the next request; it was checked once.
            response.on('data', () => {});
            response.on('end', () =>
              response.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${response.statusCode}`)),
            );
            response.on('error', reject);
          });
          outgoing.on('error', reject);
          outgoing.end();
        });
      // The window's CPU is this process's in `measure`; the server's is read around the whole run, warm-up
      // included, and counted against every request the run answered.
      const before = serverCpuSeconds();
      const result = await measure(name, concurrency, callOnce, window);
      const used = serverCpuSeconds() - before;
      return { ...result, cpuUsPerOp: (used * 1e6) / (result.ops * (1 + window.warmupMs / window.durationMs)) };
    },
    close() {
      for (const agent of agents) agent.destroy();
    },
  };
}

/**
 * On a machine of two cores or more with `taskset`, the servers run on core 0 and wrk on core 1: left to
 * the scheduler, the two (and the servers' own threads) share a core now and then, and a run measures
 * that rather than the server. `BENCH_PIN=0` turns it off.
 */
const PIN =
  process.env.BENCH_PIN !== '0' &&
  availableParallelism() >= 2 &&
  spawnSync('taskset', ['--version'], { stdio: 'ignore' }).error === undefined;

/** wrk, one thread: it sends far faster than a Node client, so the server is what gets measured. */
function wrkClient(): LoadGenerator {
  const run = async (args: string[]): Promise<string> => {
    const child = PIN
      ? spawn('taskset', ['-c', '1', 'wrk', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const [code] = (await once(child, 'close')) as [number | null];
    if (code !== 0) throw new Error(`wrk ${args.join(' ')} exited with ${code}:\n${output}`);
    return output;
  };
  return {
    name: 'wrk',
    description: 'wrk -t1 (one thread, keep-alive connections = concurrency), --latency percentiles',
    async run(name, concurrency, target, serverCpuSeconds, { warmupMs, durationMs, log }) {
      const headers = Object.entries(target.headers).flatMap(([key, value]) => ['-H', `${key}: ${value}`]);
      const label = `${name} ×${concurrency}`;
      const base = ['-t1', `-c${concurrency}`, ...headers];
      // wrk takes whole seconds.
      if (warmupMs > 0) {
        const warmupSeconds = Math.max(1, Math.round(warmupMs / 1000));
        log(`  ${label}: warm-up ${warmupSeconds} s`);
        await run([...base, `-d${warmupSeconds}s`, target.url]);
      }
      const seconds = Math.max(1, Math.round(durationMs / 1000));
      log(`  ${label}: measuring ${seconds} s`);
      const cpuBefore = serverCpuSeconds();
      const output = await run([...base, `-d${seconds}s`, '--latency', target.url]);
      const cpuUsed = serverCpuSeconds() - cpuBefore;
      const parsed = parseWrk(name, concurrency, output);
      const result = { ...parsed, cpuUsPerOp: (cpuUsed * 1e6) / parsed.ops };
      log(
        `  ${label}: ${Math.round(result.opsPerSec).toLocaleString('en-US')} req/s, server CPU ${result.cpuUsPerOp.toFixed(1)} µs a request, p50 ${result.p50Ms.toFixed(3)} ms, p99 ${result.p99Ms.toFixed(3)} ms` +
          (result.errors > 0 ? `, ${result.errors} errors (${result.firstError})` : ''),
      );
      return result;
    },
    close() {},
  };
}

/** `712.34us`, `1.20ms`, `2.01s`, `1.00m` → milliseconds. */
function durationMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) return Number.NaN;
  const scale: Record<string, number> = { us: 1e-3, ms: 1, s: 1000, m: 60_000 };
  return Number(match[1]) * scale[match[2]!]!;
}

function parseWrk(name: string, concurrency: number, output: string): Measurement {
  const percentile = (p: number) => durationMs(new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(output)?.[1] ?? '');
  const latency = /^\s*Latency\s+(\S+)\s+\S+\s+(\S+)/m.exec(output);
  const totals = /^\s*(\d+) requests in (\S+),/m.exec(output);
  if (!totals || !latency) throw new Error(`could not read wrk's output:\n${output}`);
  const ops = Number(totals[1]);
  const seconds = durationMs(totals[2]!) / 1000;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  const errors = non2xx + socketErrors;
  return {
    name,
    concurrency,
    seconds,
    // wrk counts every answer; the ones that were not 2xx are errors, not throughput.
    ops: ops - non2xx,
    opsPerSec: (ops - non2xx) / seconds,
    p50Ms: percentile(50),
    p90Ms: percentile(90),
    p99Ms: percentile(99),
    meanMs: durationMs(latency[1]!),
    maxMs: durationMs(latency[2]!),
    errors,
    firstError: errors === 0 ? null : (socket?.[0] ?? `${non2xx} answers were not 2xx`),
  };
}

function wrkInstalled(): boolean {
  return spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;
}

function chooseClient(): LoadGenerator {
  const asked = process.env.BENCH_CLIENT;
  if (asked === 'node') return nodeClient();
  if (asked === 'wrk') {
    if (!wrkInstalled()) throw new Error('BENCH_CLIENT=wrk but wrk is not installed (apt-get install wrk)');
    return wrkClient();
  }
  if (asked !== undefined && asked !== '') throw new TypeError(`BENCH_CLIENT is wrk or node, not "${asked}"`);
  return wrkInstalled() ? wrkClient() : nodeClient();
}

// ---------------------------------------------------------------------------------------------------

interface Contender {
  name: string;
  description: string;
  target(addresses: ServerAddresses): Target;
}

const contenders: Contender[] = [
  {
    name: 'fastify',
    description: 'bare Fastify 5: a handler returning { symbol, price }; logger off',
    target: (a) => ({ url: `${a.fastify}/prices/BHP`, headers: {} }),
  },
  {
    name: 'gateway',
    description:
      'Chassis gateway: public route → market-data.getPrice on the memory transport, same process; rate limit off',
    target: (a) => ({ url: `${a.gateway}/prices/BHP`, headers: {} }),
  },
  {
    name: 'edge-only',
    description:
      'the gateway answering from a custom route, no action called: its own cost (request id, deadline, metrics, error shape)',
    target: (a) => ({ url: `${a.gateway}/edge-only/BHP`, headers: {} }),
  },
  {
    name: 'gateway-auth',
    description: 'the same behind a bearer token (HS256 JWT, role customer), verified by the gateway and the service',
    target: (a) => ({ url: `${a.gatewayAuth}/prices/BHP`, headers: { authorization: `Bearer ${a.token}` } }),
  },
];

/** One request through node:http, to check a contender answers what the others answer. */
async function fetchOnce(target: Target): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const outgoing = request(target.url, { headers: target.headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => {
        if (response.statusCode !== 200) reject(new Error(`HTTP ${response.statusCode}: ${body}`));
        else resolve(JSON.parse(body));
      });
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

interface Load {
  client: LoadGenerator;
  addresses: ServerAddresses;
  serverCpuSeconds: () => number;
  failures: { name: string; error: string }[];
}

/** What a way of measuring gives: the table's rows, the per-cycle ratios if paired, and what to record. */
interface Outcome {
  rows: RatedMeasurement[];
  paired?: PairedComparison[];
  details: Record<string, unknown>;
}

/** Whether the contender answers what bare Fastify does; records a failure if not. */
async function answersRight(contender: Contender, target: Target, failures: Load['failures']): Promise<boolean> {
  try {
    const answer = await fetchOnce(target);
    if (!isDeepStrictEqual(answer, expected)) {
      throw new Error(`answered ${JSON.stringify(answer)} instead of ${JSON.stringify(expected)}`);
    }
    return true;
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    console.error(`${contender.name}: failed; skipped.\n${message}`);
    failures.push({ name: contender.name, error: message });
    return false;
  }
}

/** Each contender one after another at every concurrency, in rounds; the table shows each one's best. */
async function measureRounds(load: Load, chosen: readonly Contender[]): Promise<Outcome> {
  const { client, addresses, serverCpuSeconds, failures } = load;
  const measurements: Measurement[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    if (ROUNDS > 1) console.log(`round ${round} of ${ROUNDS}`);
    for (const contender of chosen) {
      // One that failed does not get another round.
      if (failures.some((f) => f.name === contender.name)) continue;
      const target = contender.target(addresses);
      console.log(`${contender.name}: ${contender.description}`);
      if (!(await answersRight(contender, target, failures))) continue;
      try {
        for (const concurrency of CONCURRENCIES) {
          measurements.push(await client.run(contender.name, concurrency, target, serverCpuSeconds, sequentialWindow));
        }
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        console.error(`${contender.name}: failed; skipped.\n${message}`);
        failures.push({ name: contender.name, error: message });
      }
    }
  }

  const rows = withRatios(bestRounds(measurements), BASELINE);
  console.log('');
  if (ROUNDS > 1) console.log(`best of ${ROUNDS} rounds:`);
  console.log(ratioTable(rows, { ops: 'req/s', baseline: 'fastify' }));
  if (ROUNDS > 1) {
    // Each round's gateway over that round's Fastify: how far one run can be from another.
    for (const concurrency of CONCURRENCIES) {
      const of = (name: string) => measurements.filter((m) => m.name === name && m.concurrency === concurrency);
      const ratios = of('gateway').map((m, i) => m.opsPerSec / (of(BASELINE)[i]?.opsPerSec ?? Number.NaN));
      if (ratios.length > 0) {
        console.log(
          `gateway ÷ fastify by round at ×${concurrency}: ${ratios.map((r) => `${r.toFixed(2)}×`).join(', ')}`,
        );
      }
    }
  }
  // CPU per request is what other processes on the machine hardly move: the least of the rounds.
  console.log('\nserver CPU per request (user + system, every thread of the server process; least of the rounds):');
  for (const contender of chosen) {
    const cells = CONCURRENCIES.map((concurrency) => {
      const cpu = measurements
        .filter((m) => m.name === contender.name && m.concurrency === concurrency)
        .map((m) => m.cpuUsPerOp ?? Number.NaN);
      return cpu.length === 0 ? undefined : `${Math.min(...cpu).toFixed(1)} µs at ×${concurrency}`;
    }).filter((cell) => cell !== undefined);
    if (cells.length > 0) console.log(`  ${contender.name}: ${cells.join(', ')}`);
  }
  return { rows, details: ROUNDS > 1 ? { everyRound: measurements } : {} };
}

/**
 * At each concurrency: a warm-up run of each contender, then `cycles` cycles in which each has one short
 * run in turn, the order rotated by one every cycle. The servers are all up in one process the whole time
 * and only one is loaded at once, so the server process's CPU over a run is that contender's.
 */
async function measurePaired(
  load: Load,
  chosen: readonly Contender[],
  settings: { sliceMs: number; cycles: number },
): Promise<Outcome> {
  const { client, addresses, serverCpuSeconds, failures } = load;
  const quiet = () => {};
  const up: { contender: Contender; target: Target }[] = [];
  for (const contender of chosen) {
    console.log(`${contender.name}: ${contender.description}`);
    const target = contender.target(addresses);
    if (await answersRight(contender, target, failures)) up.push({ contender, target });
  }
  const slices = new Map<string, Measurement[]>();
  const series: CycleSeries[] = [];
  for (const concurrency of CONCURRENCIES) {
    console.log(
      `×${concurrency}: warm-up ${WARMUP_MS} ms each, then ${settings.cycles} cycles of one ${settings.sliceMs} ms run each`,
    );
    const window = { warmupMs: 0, durationMs: settings.sliceMs, log: quiet };
    const of = (name: string) => {
      const key = `${name} ×${concurrency}`;
      if (!slices.has(key)) slices.set(key, []);
      return slices.get(key)!;
    };
    for (const { contender, target } of up) {
      await client.run(contender.name, concurrency, target, serverCpuSeconds, { ...window, durationMs: WARMUP_MS });
    }
    for (let cycle = 0; cycle < settings.cycles; cycle++) {
      const live = up.filter(({ contender }) => !failures.some((f) => f.name === contender.name));
      for (const { contender, target } of rotated(live, cycle)) {
        try {
          of(contender.name).push(await client.run(contender.name, concurrency, target, serverCpuSeconds, window));
        } catch (error) {
          const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
          console.error(`${contender.name}: failed; no more runs.\n${message}`);
          failures.push({ name: contender.name, error: message });
        }
      }
      const rates = live.map(({ contender }) => {
        const m = of(contender.name)[cycle];
        return `${contender.name} ${m ? Math.round(m.opsPerSec).toLocaleString('en-US') : 'n/a'}`;
      });
      console.log(`  ×${concurrency} cycle ${cycle + 1}/${settings.cycles}: ${rates.join(', ')} req/s`);
    }
    for (const { contender } of up) {
      const runs = of(contender.name);
      series.push({
        name: contender.name,
        concurrency,
        opsPerSec: runs.map((m) => m.opsPerSec),
        cpuUsPerOp: runs.map((m) => m.cpuUsPerOp ?? Number.NaN),
      });
    }
  }

  const paired = compareCycles(series, BASELINE);
  const rows: RatedMeasurement[] = [...slices.values()]
    .filter((runs) => runs.length > 0)
    .map((runs) => {
      const row = pooled(runs);
      const ratio =
        row.name === BASELINE
          ? 1
          : paired.find((p) => p.name === row.name && p.concurrency === row.concurrency)?.throughput.median;
      return { ...row, ratio };
    });
  console.log('');
  console.log(
    `${settings.cycles} cycles of paired ${settings.sliceMs} ms runs; p50 and p99 the median of the runs'; ` +
      `vs ${BASELINE}: the median of the cycles' ratios`,
  );
  console.log(ratioTable(rows, { ops: 'req/s', baseline: BASELINE }));
  console.log('');
  console.log(pairedTable(rows, paired, { baseline: BASELINE, ops: 'req/s', cpu: 'server CPU µs a request' }));
  return { rows, paired, details: { paired, everySlice: series } };
}

/**
 * One contender's runs as one: answers and seconds summed, server CPU over every answer, and the median
 * of the runs' percentiles (wrk gives percentiles, not the latencies themselves).
 */
function pooled(runs: readonly Measurement[]): Measurement {
  const sum = (pick: (m: Measurement) => number) => runs.reduce((total, m) => total + pick(m), 0);
  const ops = sum((m) => m.ops);
  const seconds = sum((m) => m.seconds);
  return {
    name: runs[0]!.name,
    concurrency: runs[0]!.concurrency,
    seconds,
    ops,
    opsPerSec: ops / seconds,
    p50Ms: spread(runs.map((m) => m.p50Ms)).median,
    p90Ms: spread(runs.map((m) => m.p90Ms)).median,
    p99Ms: spread(runs.map((m) => m.p99Ms)).median,
    meanMs: sum((m) => m.meanMs * m.ops) / ops,
    maxMs: Math.max(...runs.map((m) => m.maxMs)),
    cpuUsPerOp: sum((m) => (m.cpuUsPerOp ?? Number.NaN) * m.ops) / ops,
    errors: sum((m) => m.errors),
    firstError: runs.find((m) => m.firstError !== null)?.firstError ?? null,
  };
}

async function main(): Promise<number> {
  const unknown = ONLY?.filter((name) => !contenders.some((c) => c.name === name)) ?? [];
  if (unknown.length > 0) {
    console.error(
      `BENCH_ONLY names ${unknown.join(', ')}; the contenders are ${contenders.map((c) => c.name).join(', ')}`,
    );
    return 1;
  }
  const chosen = ONLY ? ONLY.map((name) => contenders.find((c) => c.name === name)!) : contenders;
  const client = chooseClient();
  const startedAt = new Date();
  console.log(
    `gateway-http: ${chosen.map((c) => c.name).join(', ')} at concurrency ${CONCURRENCIES.join(', ')}; ` +
      (PAIRED
        ? `warm-up ${WARMUP_MS} ms, then ${PAIRED.cycles} cycles of paired ${PAIRED.sliceMs} ms runs`
        : `warm-up ${WARMUP_MS} ms, ${DURATION_MS} ms measured each, ${ROUNDS} rounds`) +
      `; load from ${client.name}` +
      (PIN && client.name === 'wrk' ? '; servers pinned to core 0, wrk to core 1' : ''),
  );

  // The same file, run with --import tsx as this process was (fork passes execArgv on).
  const servers = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, [SERVERS_ROLE]: '1' },
    // `BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=prof"` profiles the servers.
    execArgv: [...process.execArgv, ...(process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
  });
  // Every thread of the server process (-a: the main thread, libuv's pool, the GC's helpers) on core 0.
  if (PIN && servers.pid !== undefined)
    spawnSync('taskset', ['-a', '-cp', '0', String(servers.pid)], { stdio: 'ignore' });
  const failed = new Promise<never>((_resolve, reject) => {
    servers.once('error', reject);
    servers.once('exit', (code) => reject(new Error(`the server process exited with ${code}`)));
  });
  failed.catch(() => {});
  const ready = (await Promise.race([once(servers, 'message'), failed])) as [FromServers];
  if (ready[0].type !== 'ready') throw new Error('the server process did not start');
  const addresses = ready[0].addresses;
  const serverCpuSeconds = () => (servers.pid === undefined ? Number.NaN : processCpuSeconds(servers.pid));

  const failures: { name: string; error: string }[] = [];
  let outcome: Outcome;
  try {
    const load: Load = { client, addresses, serverCpuSeconds, failures };
    outcome = PAIRED ? await measurePaired(load, chosen, PAIRED) : await measureRounds(load, chosen);
  } finally {
    client.close();
    servers.send({ type: 'stop' } satisfies ToServers);
    await Promise.race([once(servers, 'message'), failed]).catch((error: unknown) => {
      failures.push({ name: 'servers', error: `close failed: ${String(error)}` });
    });
    if (servers.exitCode === null) await Promise.race([once(servers, 'exit'), failed.catch(() => {})]);
  }
  const { rows, paired } = outcome;

  const gatewayRows = rows.filter((r) => r.name === 'gateway' && r.ratio !== undefined);
  for (const row of gatewayRows) {
    const cycles = paired?.find((p) => p.name === 'gateway' && p.concurrency === row.concurrency);
    console.log(
      `${row === gatewayRows[0] ? '\n' : ''}goal gateway ≥ ${GOAL_RATIO.toFixed(1)}× bare Fastify at ${row.concurrency}: ` +
        (cycles
          ? `${formatSpread(cycles.throughput, 3)} by throughput, median (quartiles) of ${cycles.throughput.count} cycles — ` +
            `${verdict(cycles.throughput, GOAL_RATIO)}; server CPU a request ${formatSpread(cycles.cpuPerCall)} Fastify's`
          : `${row.ratio!.toFixed(2)}× by throughput — ${row.ratio! >= GOAL_RATIO ? 'met' : 'NOT met'}`),
    );
  }
  // At the highest concurrency the server is saturated: 1/throughput is its time per request.
  const top = Math.max(...rows.map((r) => r.concurrency));
  const perRequestUs = (name: string) => {
    const row = rows.find((r) => r.name === name && r.concurrency === top);
    return row ? 1e6 / row.opsPerSec : Number.NaN;
  };
  const [bare, edge, full] = ['fastify', 'edge-only', 'gateway'].map(perRequestUs) as [number, number, number];
  if ([bare, edge, full].every(Number.isFinite)) {
    console.log(
      `server time per request at ×${top}: bare Fastify ${bare.toFixed(1)} µs; the gateway's own hooks add ${(edge - bare).toFixed(1)} µs; ` +
        `the local action call (validation both ways, policies, metrics, deadline) adds ${(full - edge).toFixed(1)} µs`,
    );
  }

  const manifest = JSON.parse(
    await readFile(new URL('../../packages/gateway/package.json', import.meta.url), 'utf8'),
  ) as { version: string };
  await writeResults('gateway-http', startedAt, {
    client: { name: client.name, description: client.description },
    pinned: PIN ? 'servers on core 0, wrk on core 1 (taskset)' : false,
    warmupMs: WARMUP_MS,
    ...(PAIRED
      ? { mode: 'paired runs', sliceMs: PAIRED.sliceMs, cycles: PAIRED.cycles }
      : { mode: 'rounds', durationMs: DURATION_MS, rounds: ROUNDS }),
    request: 'GET /prices/BHP',
    response: expected,
    versions: { ...addresses.versions, gateway: manifest.version },
    goal: { contender: 'gateway', minRatioToFastify: GOAL_RATIO },
    contenders: Object.fromEntries(chosen.map((c) => [c.name, { description: c.description }])),
    baseline: BASELINE,
    results: rows,
    ...outcome.details,
    failures,
  });
  if (failures.length > 0) console.error(`failed: ${failures.map((f) => f.name).join(', ')}`);
  return failures.length > 0 ? 1 : 0;
}

if (process.env[SERVERS_ROLE] !== '1') {
  process.exitCode = await main();
  // Everything was closed above; if some handle still keeps the process alive, say so and leave anyway.
  setTimeout(() => {
    console.error(`still running 5 s after the end; open resources: ${process.getActiveResourcesInfo().join(', ')}`);
    process.exit();
  }, 5000).unref();
} else {
  await serve();
}
