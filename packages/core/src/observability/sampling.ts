import { type SpanContext, TraceFlags } from '@opentelemetry/api';
import { ChassisError } from '../errors.ts';

/**
 * Which traces a node records: head sampling, decided once where a trace starts and carried in the
 * `traceparent` sampled flag to every hop after it.
 *
 * The default is parent-based with 1 root trace in 10 recorded (`parentbased_traceidratio`, ratio 0.1):
 * a trace that arrives with a context is recorded exactly when its caller recorded it, so a trace is
 * whole or absent, never holes; and a node that starts traces (the gateway, a script, a timer) records a
 * tenth of them. Recording every trace costs more than the rest of a call (two SDK spans, their
 * attributes, their garbage), so the default is the cheap one; set `OTEL_TRACES_SAMPLER_ARG=1` (or
 * `tracing.sampleRatio: 1`) to record everything, as tests that assert spans do.
 *
 * `OTEL_TRACES_SAMPLER` takes the values OpenTelemetry defines for the built-in samplers: `always_on`,
 * `always_off`, `traceidratio` (each ignoring the caller's decision), `parentbased_always_on`,
 * `parentbased_always_off`, `parentbased_traceidratio`; `OTEL_TRACES_SAMPLER_ARG` is the ratio of the
 * two `traceidratio` ones. The ratio is applied to the trace id as OpenTelemetry's `TraceIdRatioBased`
 * sampler does, so nodes with one ratio agree on a trace.
 */
export interface Sampling {
  /** Whether work under a valid parent context is recorded. */
  sampled(parent: SpanContext): boolean;
  /**
   * A trace started here is recorded when its id's 32-bit words xor-ed are below this (0 to 2^32): the
   * words, not the id, so a trace not recorded never has its id formatted.
   */
  readonly rootBound: number;
}

export const defaultSampleRatio = 0.1;

const samplers = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

/** The sampling a node uses: `ratio` when given, else the environment's, else the default. */
export function samplingOf(options: { ratio?: number | undefined; env?: NodeJS.ProcessEnv }): Sampling {
  if (options.ratio !== undefined) return parentBased(checkedRatio(options.ratio, 'tracing.sampleRatio'));
  const env = options.env ?? {};
  const name = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase() || 'parentbased_traceidratio';
  const argument = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  const ratio = () => (argument ? checkedRatio(Number(argument), 'OTEL_TRACES_SAMPLER_ARG') : defaultSampleRatio);
  switch (name as (typeof samplers)[number]) {
    case 'always_on':
      return ignoringParent(1);
    case 'always_off':
      return ignoringParent(0);
    case 'traceidratio':
      return ignoringParent(ratio());
    case 'parentbased_always_on':
      return parentBased(1);
    case 'parentbased_always_off':
      return parentBased(0);
    case 'parentbased_traceidratio':
      return parentBased(ratio());
    default:
      throw new ChassisError(
        'CONFIG',
        `OTEL_TRACES_SAMPLER is "${env.OTEL_TRACES_SAMPLER}"; Chassis supports ${samplers.join(', ')}`,
      );
  }
}

function checkedRatio(ratio: number, what: string): number {
  if (!(ratio >= 0 && ratio <= 1)) {
    throw new ChassisError('CONFIG', `${what} must be a number from 0 to 1 (the fraction of traces recorded)`);
  }
  return ratio;
}

function parentBased(ratio: number): Sampling {
  return {
    sampled: (parent) => (parent.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED,
    rootBound: boundOf(ratio),
  };
}

function ignoringParent(ratio: number): Sampling {
  const bound = boundOf(ratio);
  return { sampled: (parent) => accumulated(parent.traceId) < bound, rootBound: bound };
}

/** OpenTelemetry's `TraceIdRatioBased` bound: an id is sampled when its words xor-ed are below it. */
function boundOf(ratio: number): number {
  return ratio >= 1 ? 0x100000000 : Math.floor(ratio * 0xffffffff);
}

/** A trace id's four 32-bit words xor-ed, as `TraceIdRatioBased` reads it. */
function accumulated(traceId: string): number {
  let accumulation = 0;
  for (let i = 0; i < 32; i += 8) {
    let word = 0;
    for (let j = 0; j < 8; j++) {
      const c = traceId.charCodeAt(i + j);
      word = word * 16 + (c < 58 ? c - 48 : c < 71 ? c - 55 : c - 87);
    }
    accumulation = (accumulation ^ word) >>> 0;
  }
  return accumulation;
}
