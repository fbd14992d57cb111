import { type Attributes, type Context, type HrTime, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan, Span as SdkSpan, SpanProcessor } from '@opentelemetry/sdk-trace';

/**
 * The last spans a node recorded, kept in memory so that a tool (`chassis`, the dashboard) can show
 * recent traces through the ops API (`traces`, `trace`) without a collector. Bounded: a ring of the last
 * `keep` finished spans, the oldest overwritten first, so its memory stays flat however busy the node.
 *
 * It holds only what the node records, so it costs nothing for a trace that is not sampled; for one that
 * is, a slot in the ring. Spans come two ways: as plain records (`add`) when the store is the only place
 * spans go, which is how a node without an exporter records them, or as an OpenTelemetry span processor
 * when the SDK records them for an exporter too. Summaries and waterfalls are worked out when asked for:
 * ops requests are rare, spans are not.
 */
export class SpanStore implements SpanProcessor {
  readonly keep: number;
  private readonly ring: (SpanRecord | undefined)[];
  private next = 0;
  /** Which service each span still open belongs to, so the spans started under it inherit it. */
  private readonly services = new WeakMap<object, string>();
  private readonly nodeId: string;
  /** The resource's `service.name` when it names one service: the service of spans with nothing better. */
  readonly defaultService: string | undefined;

  constructor(options: { keep: number; nodeId: string; serviceName: string }) {
    this.keep = options.keep;
    this.ring = new Array(options.keep);
    this.nodeId = options.nodeId;
    this.defaultService = options.serviceName.includes(',') ? undefined : options.serviceName;
  }

  /** Keeps a finished span. */
  add(record: SpanRecord): void {
    this.ring[this.next] = record;
    this.next = this.next + 1 === this.keep ? 0 : this.next + 1;
  }

  onStart(span: SdkSpan, parentContext: Context): void {
    const service = ownService(span.kind, span.attributes) ?? this.parentService(parentContext) ?? this.defaultService;
    if (service !== undefined) this.services.set(span, service);
  }

  onEnd(span: ReadableSpan): void {
    const context = span.spanContext();
    this.add({
      traceId: context.traceId,
      spanId: context.spanId,
      parentSpanId: span.parentSpanContext?.spanId,
      name: span.name,
      kind: span.kind,
      service: this.services.get(span),
      startMs: hrMs(span.startTime),
      durationMs: hrMs(span.duration),
      statusCode: span.status.code,
      statusMessage: span.status.message,
      attributes: span.attributes,
    });
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }

  /** Recent traces, newest first (by when their earliest span here started); those touching `service` only, if given. */
  traces(options: { limit: number; service?: string | undefined }): TraceSummary[] {
    const byTrace = new Map<string, SpanRecord[]>();
    /** Where each trace's latest span stands in the order spans were kept: ties of start time go by it. */
    const lastKept = new Map<string, number>();
    const held = this.held();
    for (let i = 0; i < held.length; i++) {
      const id = held[i]!.traceId;
      const spans = byTrace.get(id);
      if (spans) spans.push(held[i]!);
      else byTrace.set(id, [held[i]!]);
      lastKept.set(id, i);
    }
    const summaries: (TraceSummary & { startMs: number; kept: number })[] = [];
    for (const [traceId, spans] of byTrace) {
      const services = [...new Set(spans.flatMap((held) => (held.service === undefined ? [] : [held.service])))];
      if (options.service !== undefined && !services.includes(options.service)) continue;
      let first = spans[0]!;
      let start = Number.POSITIVE_INFINITY;
      let end = Number.NEGATIVE_INFINITY;
      for (const held of spans) {
        // Start times tie at the SDK's whole milliseconds: then a parent comes before its child.
        if (held.startMs < start || (held.startMs === start && first.parentSpanId === held.spanId)) {
          start = held.startMs;
          first = held;
        }
        end = Math.max(end, held.startMs + held.durationMs);
      }
      summaries.push({
        traceId,
        root: first.name,
        startedAt: new Date(start).toISOString(),
        startMs: start,
        kept: lastKept.get(traceId)!,
        durationMs: end - start,
        spans: spans.length,
        services,
        error: spans.some((held) => held.statusCode === SpanStatusCode.ERROR),
      });
    }
    summaries.sort((a, b) => b.startMs - a.startMs || b.kept - a.kept);
    return summaries.slice(0, options.limit).map(({ startMs: _startMs, kept: _kept, ...summary }) => summary);
  }

  /** The spans of a trace this node holds, by start time; none when it holds none. */
  trace(traceId: string): StoredSpan[] {
    const spans = this.held().filter((held) => held.traceId === traceId);
    // Start times tie at the SDK's whole milliseconds: then a parent comes before its children.
    const parents = new Map(spans.map((held) => [held.spanId, held.parentSpanId]));
    const depth = (spanId: string): number => {
      let levels = 0;
      for (let up = parents.get(spanId); up !== undefined && levels < spans.length; up = parents.get(up)) levels++;
      return levels;
    };
    return spans
      .map((held) => ({ span: this.describe(held), depth: depth(held.spanId) }))
      .sort((a, b) => a.span.startMs - b.span.startMs || a.depth - b.depth)
      .map(({ span }) => span);
  }

  /** How many spans it holds now. */
  get size(): number {
    return this.held().length;
  }

  /** The spans it holds, oldest kept first. */
  private held(): SpanRecord[] {
    const inOrder = this.ring.slice(this.next).concat(this.ring.slice(0, this.next));
    return inOrder.filter((held): held is SpanRecord => held !== undefined);
  }

  private parentService(parentContext: Context): string | undefined {
    const parent = trace.getSpan(parentContext);
    return parent === undefined ? undefined : this.services.get(parent);
  }

  private describe(span: SpanRecord): StoredSpan {
    const attributes: Record<string, string | number | boolean> = {};
    for (const [key, value] of Object.entries(span.attributes)) {
      if (value === undefined || value === null) continue;
      attributes[key] = Array.isArray(value) ? value.join(',') : (value as string | number | boolean);
    }
    const parentSpanId = span.parentSpanId;
    return {
      spanId: span.spanId,
      ...(parentSpanId === undefined ? {} : { parentSpanId }),
      name: span.name,
      kind: kindNames[span.kind] ?? 'internal',
      ...(span.service === undefined ? {} : { service: span.service }),
      nodeId: this.nodeId,
      startedAt: new Date(span.startMs).toISOString(),
      startMs: span.startMs,
      durationMs: span.durationMs,
      status:
        span.statusCode === SpanStatusCode.ERROR ? 'error' : span.statusCode === SpanStatusCode.OK ? 'ok' : 'unset',
      ...(span.statusCode === SpanStatusCode.ERROR && span.statusMessage ? { error: span.statusMessage } : {}),
      attributes,
    };
  }
}

/**
 * A finished span as the store keeps it: what the ops actions show, nothing more. A span recorded
 * without the SDK is its own record (no copy); one the SDK recorded is copied into one when it ends.
 */
export interface SpanRecord {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  readonly kind: SpanKind;
  /** The service the span is the work of (`ownService`, else its parent's, else the node's one service). */
  readonly service: string | undefined;
  /** Epoch milliseconds, with the fraction the clock gives. */
  readonly startMs: number;
  readonly durationMs: number;
  readonly statusCode: SpanStatusCode;
  readonly statusMessage: string | undefined;
  readonly attributes: Attributes;
}

/** A trace as the `traces` ops action lists it: what this node holds of it. */
export interface TraceSummary {
  traceId: string;
  /** The name of the earliest span this node holds of it. */
  root: string;
  startedAt: string;
  durationMs: number;
  /** How many of its spans this node holds. */
  spans: number;
  services: string[];
  /** Whether any of those spans ended in error. */
  error: boolean;
}

/** A span as the `trace` ops action returns it. */
export interface StoredSpan {
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: 'server' | 'client' | 'producer' | 'consumer' | 'internal';
  service?: string;
  nodeId: string;
  startedAt: string;
  /** Epoch milliseconds, with the fraction the span's clock gives. */
  startMs: number;
  durationMs: number;
  status: 'ok' | 'error' | 'unset';
  error?: string;
  attributes: Record<string, string | number | boolean>;
}

const kindNames: Record<number, StoredSpan['kind']> = {
  [SpanKind.SERVER]: 'server',
  [SpanKind.CLIENT]: 'client',
  [SpanKind.PRODUCER]: 'producer',
  [SpanKind.CONSUMER]: 'consumer',
  [SpanKind.INTERNAL]: 'internal',
};

/**
 * The service a span is the work of, where its own attributes say: a served request or a local call
 * (`rpc.service`: the local call's handler runs under it), a consumed event (its subscription), a
 * schedule. Other spans (a call out, a publish, a transaction, an HTTP request) are their parent's.
 */
export function ownService(kind: SpanKind, attributes: Attributes): string | undefined {
  const named = attributes['chassis.service'];
  if (typeof named === 'string') return named;
  if (kind === SpanKind.SERVER || (kind === SpanKind.INTERNAL && attributes['chassis.local'] === true)) {
    const service = attributes['rpc.service'];
    return typeof service === 'string' ? service : undefined;
  }
  if (kind === SpanKind.CONSUMER) {
    const group = attributes['messaging.consumer.group.name'];
    return typeof group === 'string' ? group.split('.')[0] : undefined;
  }
  return undefined;
}

/** A time (since the epoch) or a duration in milliseconds. */
function hrMs(time: HrTime): number {
  return time[0] * 1000 + time[1] / 1e6;
}
