import { hostname } from 'node:os';
import { isSpanContextValid } from '@opentelemetry/api';
import { type DestinationStream, type LevelWithSilent, type Logger, pino } from 'pino';
import { currentContext } from './context.ts';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: LevelWithSilent;
  nodeId: string;
  /** The release running; default `CHASSIS_VERSION`. */
  version?: string;
  /** The commit it was built from; default `CHASSIS_COMMIT`. */
  commit?: string;
  /** Where lines go; stdout by default. */
  destination?: DestinationStream;
}

/** Paths whose values never reach a log line. */
export const redactedPaths = [
  'auth',
  'password',
  'token',
  'secret',
  'authorization',
  '*.auth',
  '*.password',
  '*.token',
  '*.secret',
  '*.authorization',
  'headers.auth',
  'headers.authorization',
];

/**
 * pino JSON lines with UTC ISO times. The service, correlation id, trace id and span id of the handler
 * running now are added to every line by a mixin reading the async context, so no user code passes
 * them around.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: {
        node: options.nodeId,
        host: hostname(),
        pid: process.pid,
        version: options.version ?? process.env.CHASSIS_VERSION,
        commit: options.commit ?? process.env.CHASSIS_COMMIT,
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: redactedPaths, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      mixin() {
        const ctx = currentContext();
        if (!ctx) return {};
        const span = ctx.span.spanContext();
        return isSpanContextValid(span)
          ? { service: ctx.service, correlationId: ctx.correlationId, traceId: span.traceId, spanId: span.spanId }
          : { service: ctx.service, correlationId: ctx.correlationId };
      },
    },
    options.destination,
  );
}
