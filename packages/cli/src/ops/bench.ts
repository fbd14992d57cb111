import { isChassisError } from '@chassis/core';
import { CliError, type Output } from '../output.ts';
import { type ConnectFlags, withConnection } from './connection.ts';
import { describeError, printJson, readJsonArgument } from './format.ts';

export interface BenchFlags extends ConnectFlags {
  concurrency?: number;
  seconds?: number;
  timeout?: number;
  json?: boolean;
}

export interface BenchResult {
  action: string;
  target: string;
  concurrency: number;
  seconds: number;
  calls: number;
  errors: number;
  errorsByCode: Record<string, number>;
  perSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
}

/**
 * Calls an action as fast as `concurrency` callers can for `seconds`: throughput and latency
 * percentiles. Through the broker the calls are ordinary calls; over an ops port each goes through its
 * `call` action (one HTTP request per call, so the numbers include that hop).
 */
export async function bench(
  actionName: string,
  inputText: string | undefined,
  flags: BenchFlags,
  output: Output,
): Promise<number> {
  const input = readJsonArgument(inputText, 'input');
  const concurrency = flags.concurrency ?? 10;
  const seconds = flags.seconds ?? 5;
  const token = flags.token ?? process.env.CHASSIS_TOKEN;
  return withConnection(flags, async (connection) => {
    const callFlags = {
      ...(token ? { token } : {}),
      ...(flags.timeout === undefined ? {} : { timeoutMs: flags.timeout }),
    };
    // One call first: a wrong name or input fails here with its one-line error, not a table of errors.
    try {
      await connection.call(actionName, input, callFlags);
    } catch (error) {
      throw describeError(error);
    }
    const latencies: number[] = [];
    const errorsByCode: Record<string, number> = {};
    let errors = 0;
    const started = performance.now();
    const until = started + seconds * 1000;
    const tty = process.stderr.isTTY === true;
    const progress = tty
      ? setInterval(() => {
          const elapsed = (performance.now() - started) / 1000;
          output.say(
            `\r${actionName}: ${latencies.length} calls, ${Math.round(latencies.length / elapsed)}/s, ${errors} errors, ${Math.max(0, Math.ceil(seconds - elapsed))}s left `,
          );
        }, 500)
      : undefined;
    const worker = async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        try {
          await connection.call(actionName, input, callFlags);
          latencies.push(performance.now() - t0);
        } catch (error) {
          errors++;
          const code = isChassisError(error) ? error.code : 'ERROR';
          errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: concurrency }, worker));
    } finally {
      clearInterval(progress);
      if (tty) output.say('');
    }
    const elapsed = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const at = (q: number) => round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
    const result: BenchResult = {
      action: actionName,
      target: connection.target,
      concurrency,
      seconds: round(elapsed),
      calls: latencies.length,
      errors,
      errorsByCode,
      perSecond: round(latencies.length / elapsed),
      latencyMs: {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: round(latencies.at(-1) ?? 0),
        mean: round(latencies.reduce((sum, l) => sum + l, 0) / Math.max(1, latencies.length)),
      },
    };
    if (flags.json) printJson(output, result);
    else {
      const l = result.latencyMs;
      output.out(
        [
          `${actionName} on ${connection.target}, ${concurrency} at a time for ${result.seconds}s`,
          `  calls      ${result.calls} (${result.perSecond}/s), ${errors} errors${errors ? ` ${JSON.stringify(errorsByCode)}` : ''}`,
          `  latency    p50 ${l.p50} ms  p90 ${l.p90} ms  p99 ${l.p99} ms  max ${l.max} ms  mean ${l.mean} ms`,
        ].join('\n'),
      );
    }
    if (result.calls === 0) throw new CliError(`No call of ${actionName} succeeded in ${seconds}s`);
    return errors === 0 ? 0 : 1;
  });
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
