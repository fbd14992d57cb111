import { isDeepStrictEqual } from 'node:util';
import {
  bestRounds,
  type Measurement,
  measure,
  measurementOf,
  type RatedMeasurement,
  ratioTable,
  Samples,
  withRatios,
  writeResults,
} from './harness.ts';
import {
  type CycleSeries,
  compareCycles,
  type PairedComparison,
  pairedTable,
  rotated,
  runSlice,
  type Slice,
} from './paired.ts';

/**
 * Contenders in one process, each at every concurrency, printed as one table with every row's throughput
 * as a ratio of the baseline's. Shared by the RPC benchmarks (local calls, NATS), which differ only in
 * their contenders. Two ways to measure: all contenders up at once, taking turns in short paired slices
 * (`paired`), or one after another, each started, measured for a window and closed, in rounds.
 */

export interface Running {
  call: () => Promise<unknown>;
  close: () => Promise<void>;
  /** Anything worth recording about this contender: versions, settings. */
  notes: Record<string, unknown>;
  /**
   * In paired slices, run at the end of each of this contender's slices: work it would otherwise do on
   * a timer in another contender's slice (Moleculer's Event exporter sends its spans every 5 s).
   */
  flush?: () => void | Promise<void>;
}

export interface Contender {
  name: string;
  description: string;
  start(): Promise<Running>;
}

export interface SideBySide {
  /** Names the results file and the progress lines. */
  benchmark: string;
  contenders: readonly Contender[];
  concurrencies: readonly number[];
  warmupMs: number;
  durationMs: number;
  /** The contender every row's ratio is taken against. */
  baseline: string;
  /** What one call must answer: a contender that answers anything else is not measured. */
  expected: unknown;
  /**
   * Times every contender is measured, one round of all after another; the table shows each one's best
   * round (the least disturbed by whatever else the machine runs), the results file every round.
   */
  rounds?: number;
  /** Settings of the run, written with the results. */
  settings: Record<string, unknown>;
  /**
   * Measure in paired slices instead of rounds: every contender started at once, warmed up for
   * `warmupMs` at each concurrency, then `cycles` cycles in which each has a slice of `sliceMs` in turn.
   */
  paired?: { sliceMs: number; cycles: number };
}

export interface SideBySideResult {
  /** Paired: each contender over all its slices, `ratio` the median of the cycles' throughput ratios. */
  rows: RatedMeasurement[];
  /** Only in paired mode: each contender against the baseline, and every contender's slices. */
  paired?: PairedComparison[];
  cycles?: CycleSeries[];
  failures: { name: string; error: string }[];
}

/**
 * The contenders `BENCH_ONLY` names (e.g. `chassis,moleculer`), in its order, or all of them. `npm run
 * bench` runs several benchmarks with one `BENCH_ONLY`, so a name another benchmark has is passed over
 * here; `undefined` when it names none of this benchmark's.
 */
export function selectContenders(benchmark: string, all: readonly Contender[]): Contender[] | undefined {
  const only = process.env.BENCH_ONLY?.split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (!only || only.length === 0) return [...all];
  const chosen = all.filter((c) => only.includes(c.name)).sort((a, b) => only.indexOf(a.name) - only.indexOf(b.name));
  if (chosen.length > 0) return chosen;
  console.log(
    `${benchmark}: BENCH_ONLY (${only.join(', ')}) names none of its contenders (${all.map((c) => c.name).join(', ')}); skipped`,
  );
  return undefined;
}

/** Starts, checks, measures and closes each contender in turn; prints the table; writes the results. */
export async function runSideBySide(run: SideBySide): Promise<SideBySideResult> {
  if (run.paired) return runPaired(run, run.paired);
  const startedAt = new Date();
  const rounds = run.rounds ?? 1;
  const tally: Tally = { measurements: [], failures: [], notes: {} };
  const { measurements, failures, notes } = tally;
  for (let round = 1; round <= rounds; round++) {
    if (rounds > 1) console.log(`round ${round} of ${rounds}`);
    for (const contender of run.contenders) {
      // One that failed to start or close does not get another round.
      if (failures.some((f) => f.name === contender.name)) continue;
      await measureContender(run, contender, tally);
    }
  }

  const rows = withRatios(bestRounds(measurements), run.baseline);
  console.log('');
  if (rounds > 1) console.log(`best of ${rounds} rounds:`);
  console.log(ratioTable(rows, { ops: 'ops/s', baseline: run.baseline }));

  await writeResults(run.benchmark, startedAt, {
    ...run.settings,
    warmupMs: run.warmupMs,
    durationMs: run.durationMs,
    rounds,
    contenders: Object.fromEntries(
      run.contenders.map((c) => [c.name, { description: c.description, ...(notes[c.name] ?? {}) }]),
    ),
    baseline: run.baseline,
    results: rows,
    ...(rounds > 1 ? { everyRound: measurements } : {}),
    failures,
  });
  if (failures.length > 0) console.error(`failed: ${failures.map((f) => f.name).join(', ')}`);
  return { rows, failures };
}

/** What the rounds gather: every measurement, the contenders that failed, and each one's notes. */
interface Tally {
  measurements: Measurement[];
  failures: { name: string; error: string }[];
  notes: Record<string, Record<string, unknown>>;
}

/** Starts one contender and checks its answer; undefined (and a failure in the tally) if it cannot. */
async function startContender(run: SideBySide, contender: Contender, tally: Tally): Promise<Running | undefined> {
  console.log(`${contender.name}: starting (${contender.description})`);
  let running: Running;
  try {
    running = await contender.start();
    const answered = await running.call();
    if (!isDeepStrictEqual(answered, run.expected)) {
      await running.close();
      throw new Error(`answered ${JSON.stringify(answered)} instead of ${JSON.stringify(run.expected)}`);
    }
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    console.error(`${contender.name}: could not start; skipped.\n${message}`);
    tally.failures.push({ name: contender.name, error: message });
    return undefined;
  }
  tally.notes[contender.name] = running.notes;
  return running;
}

async function closeContender(name: string, running: Running, tally: Tally): Promise<void> {
  console.log(`${name}: closing`);
  await running.close().catch((error: unknown) => {
    console.error(`${name}: close failed: ${error instanceof Error ? error.message : String(error)}`);
    tally.failures.push({ name, error: `close failed: ${String(error)}` });
  });
}

/** Starts one contender, checks its answer, measures it at every concurrency and closes it. */
async function measureContender(run: SideBySide, contender: Contender, tally: Tally): Promise<void> {
  const running = await startContender(run, contender, tally);
  if (!running) return;
  try {
    for (const concurrency of run.concurrencies) {
      tally.measurements.push(
        await measure(contender.name, concurrency, running.call, {
          warmupMs: run.warmupMs,
          durationMs: run.durationMs,
        }),
      );
    }
  } finally {
    await closeContender(contender.name, running, tally);
  }
}

/** The slices one contender had at one concurrency, in cycle order. */
interface SliceSeries {
  name: string;
  concurrency: number;
  slices: Slice[];
}

/**
 * Starts every contender, then at each concurrency warms each up and runs the cycles: in each, every
 * contender has one slice, in an order rotated by one each cycle. Prints the table (each contender over
 * all its slices, its ratio the median of the per-cycle ratios) and the per-cycle spread; writes the results.
 */
async function runPaired(run: SideBySide, settings: { sliceMs: number; cycles: number }): Promise<SideBySideResult> {
  const startedAt = new Date();
  const { sliceMs, cycles } = settings;
  const tally: Tally = { measurements: [], failures: [], notes: {} };
  const up: { name: string; running: Running }[] = [];
  for (const contender of run.contenders) {
    const running = await startContender(run, contender, tally);
    if (running) up.push({ name: contender.name, running });
  }
  const series: SliceSeries[] = [];
  try {
    for (const concurrency of run.concurrencies) {
      console.log(
        `×${concurrency}: warm-up ${run.warmupMs} ms each, then ${cycles} cycles of one ${sliceMs} ms slice each`,
      );
      for (const { running } of up) {
        await runSlice(running.call, concurrency, { sliceMs: run.warmupMs, flush: running.flush });
      }
      const byName = new Map(up.map(({ name }) => [name, { name, concurrency, slices: [] as Slice[] }]));
      for (let cycle = 0; cycle < cycles; cycle++) {
        for (const { name, running } of rotated(up, cycle)) {
          const slice = await runSlice(running.call, concurrency, { sliceMs, flush: running.flush });
          if (!slice.settled) console.log(`  ${name} ×${concurrency}: calls still in flight 10 s after its slice`);
          byName.get(name)!.slices.push(slice);
        }
        const rates = up.map(({ name }) => {
          const slice = byName.get(name)!.slices[cycle]!;
          return `${name} ${Math.round(slice.calls / slice.seconds).toLocaleString('en-US')}`;
        });
        console.log(`  ×${concurrency} cycle ${cycle + 1}/${cycles}: ${rates.join(', ')} ops/s`);
      }
      series.push(...byName.values());
    }
  } finally {
    for (const { name, running } of up) await closeContender(name, running, tally);
  }

  const cycleSeries: CycleSeries[] = series.map((s) => ({
    name: s.name,
    concurrency: s.concurrency,
    opsPerSec: s.slices.map((slice) => slice.calls / slice.seconds),
    cpuUsPerOp: s.slices.map((slice) => slice.cpuUsPerCall),
  }));
  const paired = compareCycles(cycleSeries, run.baseline);
  const rows: RatedMeasurement[] = series.map((s) => {
    const ratio =
      s.name === run.baseline
        ? 1
        : paired.find((p) => p.name === s.name && p.concurrency === s.concurrency)?.throughput.median;
    return { ...summarize(s), ratio };
  });
  console.log('');
  console.log(`${cycles} cycles of paired ${sliceMs} ms slices; vs ${run.baseline}: the median of the cycles' ratios`);
  console.log(ratioTable(rows, { ops: 'ops/s', baseline: run.baseline }));
  console.log('');
  console.log(pairedTable(rows, paired, { baseline: run.baseline, ops: 'ops/s', cpu: 'CPU µs a call' }));

  await writeResults(run.benchmark, startedAt, {
    ...run.settings,
    mode: 'paired slices',
    warmupMs: run.warmupMs,
    sliceMs,
    cycles,
    contenders: Object.fromEntries(
      run.contenders.map((c) => [c.name, { description: c.description, ...(tally.notes[c.name] ?? {}) }]),
    ),
    baseline: run.baseline,
    results: rows,
    paired,
    everySlice: cycleSeries,
    failures: tally.failures,
  });
  if (tally.failures.length > 0) console.error(`failed: ${tally.failures.map((f) => f.name).join(', ')}`);
  return { rows, paired, cycles: cycleSeries, failures: tally.failures };
}

/** One contender over all its slices: calls and windows summed, latencies pooled, CPU over every call. */
function summarize(s: SliceSeries): Measurement {
  const latencies = new Samples();
  let ops = 0;
  let seconds = 0;
  let answered = 0;
  let cpuUs = 0;
  let errors = 0;
  let firstError: string | null = null;
  for (const slice of s.slices) {
    latencies.append(slice.latenciesNs);
    ops += slice.calls;
    seconds += slice.seconds;
    answered += slice.answered;
    cpuUs += slice.cpuUs;
    errors += slice.errors;
    firstError ??= slice.firstError;
  }
  return measurementOf({
    name: s.name,
    concurrency: s.concurrency,
    seconds,
    ops,
    latenciesNs: latencies.sorted(),
    cpuUsPerOp: answered === 0 ? Number.NaN : cpuUs / answered,
    errors,
    firstError,
  });
}

/** The few members of a Moleculer broker `flushMoleculerSpans` uses. */
interface TracingBroker {
  tracer?: { exporter?: unknown[] };
}

/**
 * Hands the spans Moleculer's Event exporter has queued to it now (it sends them every 5 s on a timer):
 * the `flush` of a Moleculer contender with tracing, so that its slices pay for their spans.
 */
export function flushMoleculerSpans(...brokers: TracingBroker[]): void {
  for (const broker of brokers) {
    for (const exporter of broker.tracer?.exporter ?? []) (exporter as { flush?: () => void }).flush?.();
  }
}

/**
 * Sets the exit code; everything was closed by then, but if some handle still keeps the process alive,
 * says which and leaves anyway.
 */
export function exitWhenDone(exitCode: number): void {
  process.exitCode = exitCode;
  setTimeout(() => {
    console.error(`still running 5 s after the end; open resources: ${process.getActiveResourcesInfo().join(', ')}`);
    process.exit();
  }, 5000).unref();
}
