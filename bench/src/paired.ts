import { hrtime } from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { closedLoop, formatTable, type RatedMeasurement, Samples, settleWithin } from './harness.ts';

/**
 * Paired slices: contenders that are all up at once take turns in short slices, the order rotating every
 * cycle, and each contender is compared with the baseline cycle by cycle. On a shared 2-core machine a
 * contender measured for 5 s moves by a third from one run to the next (other work comes and goes); two
 * slices a few hundred milliseconds apart see the same machine, so the ratio of each cycle's pair, taken
 * over many cycles, is steady where a ratio of separate runs is not. What is shared by the paired modes
 * of the RPC benchmarks (`side-by-side.ts`), the gateway's (`gateway-http.ts`) and `rpc-nats-ab.ts`.
 */

/** The median and the quartiles of some values, how many there were, and how sure the median is. */
export interface Spread {
  median: number;
  q1: number;
  q3: number;
  count: number;
  /**
   * A 95 % interval for the median of what was sampled, from the order statistics (no assumption about
   * the distribution; the normal approximation of the binomial, close from 10 values on): a goal is
   * decided only if the interval is on one side of it.
   */
  low: number;
  high: number;
}

/** The `q` quantile (0–1) of values sorted ascending, interpolated linearly between neighbours. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const at = (sorted.length - 1) * q;
  const below = Math.floor(at);
  const above = Math.min(sorted.length - 1, below + 1);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (at - below);
}

/** Median and quartiles of the finite values (a cycle that measured nothing gives NaN and is left out). */
export function spread(values: readonly number[]): Spread {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  const n = sorted.length;
  // The ranks (1-based) between which the median lies with 95 % confidence: n/2 ± 1.96 √n / 2.
  const half = 0.98 * Math.sqrt(n);
  const lowRank = Math.max(1, Math.round(n / 2 - half));
  const highRank = Math.min(n, Math.round(n / 2 + 1 + half));
  return {
    median: quantile(sorted, 0.5),
    q1: quantile(sorted, 0.25),
    q3: quantile(sorted, 0.75),
    count: n,
    low: n === 0 ? Number.NaN : sorted[lowRank - 1]!,
    high: n === 0 ? Number.NaN : sorted[highRank - 1]!,
  };
}

/** The spread of the inverses (the baseline's CPU over the contender's, say): inverting keeps the order. */
export function inverse(s: Spread): Spread {
  return { median: 1 / s.median, q1: 1 / s.q3, q3: 1 / s.q1, count: s.count, low: 1 / s.high, high: 1 / s.low };
}

/** Whether a goal of at least `goal` is met by a spread's median, and whether its 95 % interval agrees. */
export function verdict(s: Spread, goal: number): string {
  if (s.count === 0) return 'not measured';
  // Below 6 values no two order statistics hold the median with 95 % confidence.
  if (s.count < 6) return `${s.median >= goal ? 'met' : 'not met'} by the median, too few cycles to decide`;
  if (s.low >= goal) return 'met';
  if (s.high < goal) return 'not met';
  return `${s.median >= goal ? 'met' : 'not met'} by the median, undecided at 95 % (${s.low.toFixed(2)}–${s.high.toFixed(2)})`;
}

/** Each cycle's value over the baseline's in the same cycle. */
export function cycleRatios(values: readonly number[], baseline: readonly number[]): number[] {
  return values.map((value, cycle) => value / (baseline[cycle] ?? Number.NaN));
}

/** `1.02× (0.97–1.08)`: a spread of ratios, its median and then its quartiles. */
export function formatSpread(s: Spread, digits = 2): string {
  if (s.count === 0) return 'n/a';
  return `${s.median.toFixed(digits)}× (${s.q1.toFixed(digits)}–${s.q3.toFixed(digits)})`;
}

/** The items in the order of cycle `cycle`: rotated by one each cycle, so that each goes first in turn. */
export function rotated<T>(items: readonly T[], cycle: number): T[] {
  const shift = items.length === 0 ? 0 : cycle % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

/** Whether to measure in paired slices: `BENCH_PAIRED` (`1` or `0`) if set, else `byDefault`. */
export function pairedMode(byDefault: boolean): boolean {
  const raw = process.env.BENCH_PAIRED;
  if (raw === undefined || raw === '') return byDefault;
  if (raw === '1') return true;
  if (raw === '0') return false;
  throw new TypeError(`BENCH_PAIRED is 1 (paired slices) or 0 (rounds one after another), not "${raw}"`);
}

/** Slice length and cycles counted: `BENCH_SLICE_MS` and `BENCH_SLICES` if set, else the defaults. */
export function pairedSettings(defaults: { sliceMs: number; cycles: number }): { sliceMs: number; cycles: number } {
  const read = (variable: string, fallback: number) => {
    const raw = process.env[variable];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new TypeError(`${variable} must be a positive integer, not "${raw}"`);
    return n;
  };
  return { sliceMs: read('BENCH_SLICE_MS', defaults.sliceMs), cycles: read('BENCH_SLICES', defaults.cycles) };
}

/** One contender's turn. */
export interface Slice {
  /** Calls that ended inside the measured window. */
  calls: number;
  /** The measured window, in seconds, and the time `flush` took. */
  seconds: number;
  /** Calls that succeeded in the slice, counted or not (the ramp's, the ones ending after the window). */
  answered: number;
  /** This process's CPU time over the whole slice, from its first call until its last ended, in µs. */
  cpuUs: number;
  /** `cpuUs` over `answered`. */
  cpuUsPerCall: number;
  /** Latencies of the calls counted, in nanoseconds. */
  latenciesNs: Samples;
  errors: number;
  firstError: string | null;
  /** False if some call had not ended `settleMs` after the window closed (it then runs into the next slice). */
  settled: boolean;
}

export interface SliceOptions {
  /** Length of the measured window. */
  sliceMs: number;
  /**
   * Calls before the window opens, not counted: the slice starts with no call in flight, and at
   * concurrency 64 the first answers come one round trip later. Default 20 ms.
   */
  rampMs?: number;
  /** How long to wait for the calls in flight when the window closes. Default 10 000 ms. */
  settleMs?: number;
  /**
   * Run once the slice's calls have ended, inside its CPU and its window's length: work the contender
   * would otherwise do on a timer during another's slice (a batch of spans), so that it pays for it.
   */
  flush?: () => void | Promise<void>;
}

/**
 * One slice of closed-loop calls. Nothing is in flight when it starts, and it returns only once every
 * call it started has ended, so no call of one contender runs in another's slice. Throughput counts the
 * calls that ended inside the window (after the ramp, until it closes), their latencies the same calls;
 * CPU per call is this process's CPU from the slice's start until its last call ended (and `flush`), over
 * every call that succeeded in it: all the work the contender did while it had the process.
 */
export async function runSlice(
  callOnce: () => Promise<unknown>,
  concurrency: number,
  options: SliceOptions,
): Promise<Slice> {
  const rampMs = options.rampMs ?? 20;
  const cpuAtStart = process.cpuUsage();
  const windowStart = hrtime.bigint() + BigInt(Math.round(rampMs * 1e6));
  let windowEnd: bigint | undefined;
  let answered = 0;
  const latenciesNs = new Samples();
  const loop = closedLoop(concurrency, callOnce, (started, finished) => {
    answered++;
    if (finished >= windowStart && windowEnd === undefined) latenciesNs.push(Number(finished - started));
  });
  await sleep(rampMs + options.sliceMs);
  windowEnd = hrtime.bigint();
  loop.stop();
  const settled = await settleWithin(loop.done, options.settleMs ?? 10_000);
  // The flush's time counts in the window too: run on its timer, it would have held calls up.
  const flushStart = hrtime.bigint();
  await options.flush?.();
  const flushNs = options.flush ? hrtime.bigint() - flushStart : 0n;
  const cpu = process.cpuUsage(cpuAtStart);
  const cpuUs = cpu.user + cpu.system;
  const { count: errors, first: firstError } = loop.errors();
  return {
    calls: latenciesNs.length,
    seconds: Number(windowEnd - windowStart + flushNs) / 1e9,
    answered,
    cpuUs,
    cpuUsPerCall: answered === 0 ? Number.NaN : cpuUs / answered,
    latenciesNs,
    errors,
    firstError,
    settled,
  };
}

/** One contender's slices at one concurrency, in cycle order: throughput and CPU per call of each. */
export interface CycleSeries {
  name: string;
  concurrency: number;
  opsPerSec: number[];
  cpuUsPerOp: number[];
}

/** One contender against the baseline, cycle by cycle, at one concurrency. */
export interface PairedComparison {
  name: string;
  concurrency: number;
  /** The contender's throughput over the baseline's, each cycle. */
  throughput: Spread;
  /** The contender's CPU per call over the baseline's, each cycle. */
  cpuPerCall: Spread;
}

/** Each contender over the baseline at the same concurrency, cycle by cycle. */
export function compareCycles(series: readonly CycleSeries[], baseline: string): PairedComparison[] {
  const comparisons: PairedComparison[] = [];
  for (const s of series) {
    const base = series.find((b) => b.name === baseline && b.concurrency === s.concurrency);
    if (!base || s === base) continue;
    comparisons.push({
      name: s.name,
      concurrency: s.concurrency,
      throughput: spread(cycleRatios(s.opsPerSec, base.opsPerSec)),
      cpuPerCall: spread(cycleRatios(s.cpuUsPerOp, base.cpuUsPerOp)),
    });
  }
  return comparisons;
}

/** Each contender's CPU per call, and its per-cycle ratios to the baseline: median (quartiles). */
export function pairedTable(
  rows: readonly RatedMeasurement[],
  paired: readonly PairedComparison[],
  labels: { baseline: string; ops: string; cpu: string },
): string {
  return formatTable([
    ['contender', 'concurrency', labels.cpu, `${labels.ops} ÷ ${labels.baseline}'s`, `CPU ÷ ${labels.baseline}'s`],
    ...[...rows]
      .sort((a, b) => a.concurrency - b.concurrency)
      .map((row) => {
        const p = paired.find((c) => c.name === row.name && c.concurrency === row.concurrency);
        const self = row.name === labels.baseline ? '1' : 'n/a';
        return [
          row.name,
          String(row.concurrency),
          row.cpuUsPerOp === undefined || !Number.isFinite(row.cpuUsPerOp) ? 'n/a' : row.cpuUsPerOp.toFixed(2),
          p ? formatSpread(p.throughput) : self,
          p ? formatSpread(p.cpuPerCall) : self,
        ];
      }),
  ]);
}
