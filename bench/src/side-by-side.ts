import { isDeepStrictEqual } from 'node:util';
import {
  bestRounds,
  type Measurement,
  measure,
  type RatedMeasurement,
  ratioTable,
  withRatios,
  writeResults,
} from './harness.ts';

/**
 * Contenders measured one after another in one process, each at every concurrency, then printed as one
 * table with every row's throughput as a ratio of the baseline's. Shared by the RPC benchmarks (local
 * calls, NATS), which differ only in their contenders.
 */

export interface Running {
  call: () => Promise<unknown>;
  close: () => Promise<void>;
  /** Anything worth recording about this contender: versions, settings. */
  notes: Record<string, unknown>;
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
}

export interface SideBySideResult {
  rows: RatedMeasurement[];
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

/** Starts one contender, checks its answer, measures it at every concurrency and closes it. */
async function measureContender(run: SideBySide, contender: Contender, tally: Tally): Promise<void> {
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
    return;
  }
  tally.notes[contender.name] = running.notes;
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
    console.log(`${contender.name}: closing`);
    await running.close().catch((error: unknown) => {
      console.error(`${contender.name}: close failed: ${error instanceof Error ? error.message : String(error)}`);
      tally.failures.push({ name: contender.name, error: `close failed: ${String(error)}` });
    });
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
