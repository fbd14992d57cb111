import {
  type Attributes,
  type Context,
  INVALID_SPAN_CONTEXT,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  type SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type SpanExporter,
  TracerProvider,
} from '@opentelemetry/sdk-trace';

export { type Span, SpanKind } from '@opentelemetry/api';
export { InMemorySpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace';

/**
 * OpenTelemetry spans for call, serve, publish and consume, with W3C trace context carried in every
 * envelope (`traceparent`, `tracestate`).
 *
 * Each node has its own tracer provider when it exports spans (to OTLP when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or to an exporter given in code, e.g. an in-memory one in tests);
 * otherwise it uses whatever global provider the application registered, which is a no-op by default —
 * and then the context still flows through, so traces continue across nodes that do export.
 */
export interface TracingOptions {
  /** Where spans go. Omit to export over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. */
  exporter?: SpanExporter;
  /** `service.name` of the resource; default `OTEL_SERVICE_NAME`, else the node's service names. */
  serviceName?: string;
  /** Record spans with the tracer provider registered with `@opentelemetry/api` (e.g. by the OTel Node SDK). */
  global?: boolean;
}

/** Stands for "no span" where nothing records: it carries no context and costs nothing to end. */
const NO_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

const propagator = new W3CTraceContextPropagator();
const getter: TextMapGetter<Record<string, string>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

export class Tracing {
  readonly tracer: Tracer;
  /**
   * Whether spans are recorded. When not, no span is made: the parent's context (from an incoming
   * `traceparent`) is passed on untouched, so traces still continue through this node.
   */
  readonly recording: boolean;
  private readonly provider: TracerProvider | undefined;

  constructor(provider: TracerProvider | undefined, global = false) {
    this.provider = provider;
    this.recording = provider !== undefined || global;
    this.tracer = (provider ?? trace).getTracer('@chassis/core');
  }

  static async create(
    options: TracingOptions & { nodeId: string; defaultServiceName: string; env?: NodeJS.ProcessEnv },
  ): Promise<Tracing> {
    const env = options.env ?? process.env;
    let exporter = options.exporter;
    if (!exporter && env.OTEL_EXPORTER_OTLP_ENDPOINT) {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
      exporter = new OTLPTraceExporter();
    }
    if (!exporter) return new Tracing(undefined, options.global === true);
    const processor =
      exporter instanceof InMemorySpanExporter
        ? new SimpleSpanProcessor({ exporter })
        : new BatchSpanProcessor({ exporter });
    return new Tracing(
      new TracerProvider({
        resource: resourceFromAttributes({
          'service.name': options.serviceName ?? env.OTEL_SERVICE_NAME ?? options.defaultServiceName,
          'service.instance.id': options.nodeId,
        }),
        spanProcessors: [processor],
      }),
    );
  }

  /** The trace context a message carries; the root context when it carries none. */
  extract(headers: Record<string, string>): Context {
    return headers.traceparent === undefined ? ROOT_CONTEXT : propagator.extract(ROOT_CONTEXT, headers, getter);
  }

  /** Writes the span's context into outgoing headers. */
  inject(span: Span, headers: Record<string, string>): void {
    if (!isSpanContextValid(span.spanContext())) return;
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, {
      set: (carrier, key, value) => {
        carrier[key] = value;
      },
    });
  }

  /** A new span when recording; otherwise the parent's span (or none), so context flows on. */
  start(name: string, kind: SpanKind, parent: Context, attributes: Attributes): Span {
    return this.tracer.startSpan(name, { kind, attributes }, parent);
  }

  /** The span to use when not recording: the parent's own, or none. */
  static passThrough(parent: Context): Span {
    return trace.getSpan(parent) ?? NO_SPAN;
  }

  /** Ends a span with the outcome of the work it covered. */
  static end(span: Span, error?: unknown): void {
    if (error !== undefined) {
      const code = (error as { code?: unknown }).code;
      span.setAttribute('chassis.error_code', typeof code === 'string' ? code : 'INTERNAL');
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    }
    span.end();
  }

  async shutdown(): Promise<void> {
    await this.provider?.shutdown();
  }
}

/** The context whose active span is `span`; the root context for no span (nothing to carry). */
export function contextOf(span: Span): Context {
  return span === NO_SPAN ? ROOT_CONTEXT : trace.setSpan(ROOT_CONTEXT, span);
}
