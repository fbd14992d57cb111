import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { hrtime } from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The benchmark harness: closed-loop load with a fixed number of workers, each calling, awaiting the
 * answer, and calling again. Latency is measured per call with `process.hrtime.bigint()`; throughput is
 * the number of calls that started and finished inside the measured window, divided by its length.
 * Reused by every benchmark in this package: give it a name, a concurrency and one call.
 */

export interface MeasureOptions {
  /** Calls made before measuring, to warm up JIT, connections and caches. Default 1000 ms. */
  warmupMs?: number;
  /** Length of the measured window. Default 5000 ms. */
  durationMs?: number;
  /** How long to wait, after the window closes, for calls still in flight. Default 10 000 ms. */
  settleMs?: number;
  /** Progress lines; default `console.log`. */
  log?: (line: string) => void;
}

export interface Measurement {
  name: string;
  concurrency: number;
  /** Length of the measured window, in seconds. */
  seconds: number;
  /** Calls that succeeded inside the window. */
  ops: number;
  opsPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  /**
   * This process's CPU time (user + system, every thread) over the window, per call counted. Unlike
   * throughput it hardly moves when other processes compete for the cores; for a local call, which is
   * CPU alone, it is the cost of one call. Unset where the load is measured outside this process (wrk).
   */
  cpuUsPerOp?: number;
  /** Calls that failed, warm-up included. */
  errors: number;
  /** The first error's message, if any call failed. */
  firstError: string | null;
}

/** Seconds of the measured window: `BENCH_SECONDS` if set, else 5. */
export function benchDurationMs(defaultSeconds = 5): number {
  const raw = process.env.BENCH_SECONDS;
  if (raw === undefined || raw === '') return defaultSeconds * 1000;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new TypeError(`BENCH_SECONDS must be a positive number of seconds, not "${raw}"`);
  }
  return Math.round(seconds * 1000);
}

/** How long each contender is warmed up before it is measured: `BENCH_WARMUP_MS` if set, else `defaultMs`. */
export function benchWarmupMs(defaultMs: number): number {
  const raw = process.env.BENCH_WARMUP_MS;
  if (raw === undefined || raw === '') return defaultMs;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < 0)
    throw new TypeError(`BENCH_WARMUP_MS must be a whole number of ms, not "${raw}"`);
  return ms;
}

/** How many rounds of every contender: `BENCH_ROUNDS` if set, else `defaultRounds`. */
export function benchRounds(defaultRounds: number): number {
  const raw = process.env.BENCH_ROUNDS;
  if (raw === undefined || raw === '') return defaultRounds;
  const rounds = Number(raw);
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new TypeError(`BENCH_ROUNDS must be a positive integer, not "${raw}"`);
  return rounds;
}

/** The concurrencies to measure at: `variable` (e.g. `BENCH_CONCURRENCY=1,64`) if set, else `defaults`. */
export function benchConcurrencies(defaults: string, variable = 'BENCH_CONCURRENCY'): number[] {
  return (process.env[variable] ?? defaults).split(',').map((c) => {
    const n = Number(c.trim());
    if (!Number.isInteger(n) || n < 1) throw new TypeError(`${variable} lists positive integers, not "${c}"`);
    return n;
  });
}

/** Growable list of float64s: avoids boxing hundreds of thousands of latencies in a plain array. */
export class Samples {
  private data = new Float64Array(1 << 16);
  length = 0;

  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }

  /** Appends every value of another list. */
  append(other: Samples): void {
    for (let i = 0; i < other.length; i++) this.push(other.data[i]!);
  }

  sorted(): Float64Array {
    return this.data.slice(0, this.length).sort();
  }
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

const YIELD_EVERY_NS = 1_000_000n;

/** Workers started by `closedLoop`: stop them, then await `done` for the calls still in flight. */
export interface ClosedLoop {
  /** No worker starts another call; the ones in flight go on. */
  stop(): void;
  /** Resolves when every worker has seen its last call end. */
  done: Promise<void>;
  errors(): { count: number; first: string | null };
}

/**
 * `concurrency` workers, each calling, awaiting the answer and calling again until stopped; every call
 * that succeeds is reported to `onAnswer` with when it started and ended (`process.hrtime.bigint()`).
 * The loop under `measure` and under the paired slices of `paired.ts`.
 */
export function closedLoop(
  concurrency: number,
  callOnce: () => Promise<unknown>,
  onAnswer: (startedNs: bigint, finishedNs: bigint) => void,
): ClosedLoop {
  let stopped = false;
  let errors = 0;
  let firstError: string | null = null;
  const worker = async (): Promise<void> => {
    let yieldedAt = hrtime.bigint();
    while (!stopped) {
      const started = hrtime.bigint();
      // A call that never waits on I/O (a local call) resolves in microtasks only, and a loop of them
      // would never let timers run: not the harness's phase changes, nor the deadlines, span batches
      // and metric intervals of the code measured. So a worker lets the event loop turn every
      // millisecond, as I/O between requests would; it costs well under 1 % of the window.
      if (started - yieldedAt > YIELD_EVERY_NS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        yieldedAt = hrtime.bigint();
        continue;
      }
      try {
        await callOnce();
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        // A failing call may fail at once; do not spin the loop on it.
        await sleep(1);
        continue;
      }
      onAnswer(started, hrtime.bigint());
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, worker)).then(() => {});
  return {
    stop: () => {
      stopped = true;
    },
    done,
    errors: () => ({ count: errors, first: firstError }),
  };
}

/** Waits for `done` at most `ms`; false if it had not resolved by then. */
export async function settleWithin(done: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    done.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return settled;
}

/** Runs `concurrency` workers looping over `callOnce`: a warm-up, then the measured window. */
export async function measure(
  name: string,
  concurrency: number,
  callOnce: () => Promise<unknown>,
  options: MeasureOptions = {},
): Promise<Measurement> {
  const warmupMs = options.warmupMs ?? 1000;
  const durationMs = options.durationMs ?? benchDurationMs();
  const settleMs = options.settleMs ?? 10_000;
  const log = options.log ?? ((line: string) => console.log(line));
  const label = `${name} ×${concurrency}`;

  const latenciesNs = new Samples();
  let measuring = false;
  let windowStart = 0n;
  let windowEnd = 0n;
  const loop = closedLoop(concurrency, callOnce, (started, finished) => {
    if (measuring && started >= windowStart) latenciesNs.push(Number(finished - started));
  });

  log(`  ${label}: warm-up ${warmupMs} ms`);
  await sleep(warmupMs);
  log(`  ${label}: measuring ${durationMs} ms`);
  const cpuAtStart = process.cpuUsage();
  windowStart = hrtime.bigint();
  measuring = true;
  await sleep(durationMs);
  const cpu = process.cpuUsage(cpuAtStart);
  // Calls that finish after this point are not counted: the window has a fixed length, and only calls
  // that started and finished inside it count.
  windowEnd = hrtime.bigint();
  measuring = false;
  loop.stop();
  const counted = latenciesNs.length;

  const settled = await settleWithin(loop.done, settleMs);
  const { count: errors, first: firstError } = loop.errors();
  if (!settled) log(`  ${label}: some calls were still in flight ${settleMs} ms after the window closed`);

  const result = measurementOf({
    name,
    concurrency,
    seconds: Number(windowEnd - windowStart) / 1e9,
    ops: counted,
    latenciesNs: latenciesNs.sorted(),
    cpuUsPerOp: counted === 0 ? Number.NaN : (cpu.user + cpu.system) / counted,
    errors,
    firstError,
  });
  log(
    `  ${label}: ${Math.round(result.opsPerSec).toLocaleString('en-US')} ops/s, p50 ${result.p50Ms.toFixed(3)} ms, p99 ${result.p99Ms.toFixed(3)} ms` +
      (errors > 0 ? `, ${errors} errors (first: ${firstError})` : ''),
  );
  return result;
}

/**
 * A measurement from what its window counted: `ops` calls, their latencies in nanoseconds (sorted), the
 * window's length and CPU per call. One window of `measure`, or a contender's paired slices pooled.
 */
export function measurementOf(counted: {
  name: string;
  concurrency: number;
  seconds: number;
  ops: number;
  latenciesNs: Float64Array;
  cpuUsPerOp: number;
  errors: number;
  firstError: string | null;
}): Measurement {
  const { ops, latenciesNs: ordered } = counted;
  const toMs = (ns: number) => ns / 1e6;
  let total = 0;
  for (const ns of ordered) total += ns;
  return {
    name: counted.name,
    concurrency: counted.concurrency,
    seconds: counted.seconds,
    ops,
    opsPerSec: ops / counted.seconds,
    p50Ms: toMs(percentile(ordered, 50)),
    p90Ms: toMs(percentile(ordered, 90)),
    p99Ms: toMs(percentile(ordered, 99)),
    meanMs: ops === 0 ? Number.NaN : toMs(total / ops),
    maxMs: ops === 0 ? Number.NaN : toMs(ordered[ops - 1]!),
    cpuUsPerOp: counted.cpuUsPerOp,
    errors: counted.errors,
    firstError: counted.firstError,
  };
}

export interface OpenLoopResult<T> {
  name: string;
  /** The arrival rate asked for, and the one achieved (calls started per second of the window). */
  offeredPerSec: number;
  startedPerSec: number;
  /** Calls that succeeded, with the time (ms since the epoch) each answered and its value. */
  answers: { value: T; answeredAt: number; latencyMs: number }[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  firstError: string | null;
}

/**
 * Open-loop load: calls start at a fixed rate whatever the answers do, as customers arrive, for
 * `durationMs`. A call's latency runs from the moment it was due, not from when it went out: a harness
 * that fell behind (a stalled event loop) still charges the wait to the system, so a slow spell cannot
 * hide itself by slowing the arrivals (coordinated omission). Waits up to `settleMs` for the last answers.
 */
export async function openLoop<T>(
  name: string,
  ratePerSec: number,
  durationMs: number,
  callOnce: () => Promise<T>,
  options: { settleMs?: number; log?: (line: string) => void } = {},
): Promise<OpenLoopResult<T>> {
  const log = options.log ?? ((line: string) => console.log(line));
  const intervalMs = 1000 / ratePerSec;
  const total = Math.max(1, Math.round((durationMs / 1000) * ratePerSec));
  const answers: OpenLoopResult<T>['answers'] = [];
  const latencies = new Samples();
  const inFlight = new Set<Promise<void>>();
  let errors = 0;
  let firstError: string | null = null;
  log(`  ${name}: ${ratePerSec} calls/s offered for ${durationMs} ms (${total} calls)`);
  const startedAt = performance.now();
  const epochAt = Date.now();
  for (let i = 0; i < total; i++) {
    const dueAt = startedAt + i * intervalMs;
    const wait = dueAt - performance.now();
    if (wait > 1) await sleep(wait);
    const call = callOnce().then(
      (value) => {
        const latencyMs = performance.now() - dueAt;
        latencies.push(latencyMs);
        answers.push({ value, answeredAt: epochAt + (performance.now() - startedAt), latencyMs });
      },
      (error: unknown) => {
        errors++;
        firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      },
    );
    inFlight.add(call);
    void call.finally(() => inFlight.delete(call));
  }
  const windowSeconds = (performance.now() - startedAt) / 1000;
  let settleTimer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(inFlight),
    new Promise<void>((resolve) => {
      settleTimer = setTimeout(resolve, options.settleMs ?? 30_000);
    }),
  ]);
  clearTimeout(settleTimer);
  if (inFlight.size > 0) log(`  ${name}: ${inFlight.size} calls still unanswered after the window`);
  const sorted = latencies.sorted();
  const result: OpenLoopResult<T> = {
    name,
    offeredPerSec: ratePerSec,
    startedPerSec: total / windowSeconds,
    answers,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]!,
    errors,
    firstError,
  };
  log(
    `  ${name}: ${answers.length} answered, p50 ${result.p50Ms.toFixed(1)} ms, p99 ${result.p99Ms.toFixed(1)} ms` +
      (errors > 0 ? `, ${errors} errors (first: ${firstError})` : ''),
  );
  return result;
}

/** A fixed-width text table: first row is the header; columns after the first are right-aligned. */
export function formatTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  const line = (row: string[]) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  const [header, ...body] = rows;
  if (!header) return '';
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** Each contender's highest throughput at each concurrency, in the order they were first measured. */
export function bestRounds(measurements: readonly Measurement[]): Measurement[] {
  const byKey = new Map<string, Measurement>();
  for (const m of measurements) {
    const key = `${m.name}\u0000${m.concurrency}`;
    const kept = byKey.get(key);
    if (!kept || m.opsPerSec > kept.opsPerSec) byKey.set(key, m);
  }
  return [...byKey.values()];
}

/** A measurement with its throughput as a ratio of the baseline contender's at the same concurrency. */
export type RatedMeasurement = Measurement & { ratio: number | undefined };

export function withRatios(measurements: readonly Measurement[], baseline: string): RatedMeasurement[] {
  return measurements.map((m) => {
    const base = measurements.find((b) => b.name === baseline && b.concurrency === m.concurrency);
    return { ...m, ratio: base ? m.opsPerSec / base.opsPerSec : undefined };
  });
}

/** The table of a side-by-side run, by concurrency: throughput, latency and the ratio to the baseline. */
export function ratioTable(rows: readonly RatedMeasurement[], labels: { ops: string; baseline: string }): string {
  const fixed = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
  return formatTable([
    ['contender', 'concurrency', labels.ops, 'p50 ms', 'p99 ms', `vs ${labels.baseline}`, 'errors'],
    ...[...rows]
      .sort((a, b) => a.concurrency - b.concurrency)
      .map((r) => [
        r.name,
        String(r.concurrency),
        Math.round(r.opsPerSec).toLocaleString('en-US'),
        fixed(r.p50Ms, 3),
        fixed(r.p99Ms, 3),
        r.ratio === undefined ? 'n/a' : `${r.ratio.toFixed(2)}×`,
        String(r.errors),
      ]),
  ]);
}

/**
 * Writes a run's report to `bench/results/<benchmark>-<start time>.json` (git-ignored), with when and
 * on what machine it ran, and says where.
 */
export async function writeResults(benchmark: string, startedAt: Date, report: Record<string, unknown>): Promise<void> {
  const file = new URL(`../results/${benchmark}-${startedAt.toISOString().replaceAll(':', '-')}.json`, import.meta.url);
  await mkdir(new URL('.', file), { recursive: true });
  const full = {
    benchmark,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    ...report,
  };
  await writeFile(file, `${JSON.stringify(full, null, 2)}\n`);
  console.log(`\nresults written to ${file.pathname}`);
}
