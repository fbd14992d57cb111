import {
  type Attributes,
  type AttributeValue,
  type Exception,
  INVALID_SPAN_CONTEXT,
  type Link,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  type SpanKind,
  type SpanStatus,
  SpanStatusCode,
  type TextMapGetter,
  TraceFlags,
  type Tracer,
  type TraceState,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
// Types only: the SDK and its resources are loaded by `Tracing.create`, for a node that exports spans.
import type { IdGenerator, SpanExporter, SpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { ChassisError } from '../errors.ts';
import { InMemorySpanExporter } from './in-memory-exporter.ts';
import { type Sampling, samplingOf } from './sampling.ts';
import { ownService, type SpanRecord, SpanStore } from './span-store.ts';

export { type Attributes, type Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
export type { SpanExporter } from '@opentelemetry/sdk-trace';
export { InMemorySpanExporter } from './in-memory-exporter.ts';

/**
 * OpenTelemetry spans for call, serve, publish and consume, with W3C trace context carried in every
 * envelope (`traceparent`, `tracestate`).
 *
 * Each node keeps the last spans it recorded in memory (`SpanStore`, read through the ops API: `traces`,
 * `trace`) and exports them when asked to (to OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or to an
 * exporter given in code, e.g. an in-memory one in tests). With an exporter, spans are recorded by a
 * tracer provider of the node's own, which feeds the store too. Without one, the store is the only place
 * spans go, and they are recorded without the SDK (`RecordedSpan`: one plain object a span, which is its
 * own record in the store): an SDK span, its context objects and its processors cost about as much as
 * the rest of a NATS call, and showed in its garbage collection.
 * With `global`, or with neither a store (`keepSpans: 0`) nor an exporter, it uses whatever global
 * provider the application registered, which is a no-op by default — and then the context still flows
 * through, so traces continue across nodes that do record.
 *
 * A node with its own provider records a trace's spans only when the trace is sampled (`sampling.ts`):
 * by default it follows the caller's decision, and starts 1 trace in 10 of its own. Work that is not
 * recorded makes no SDK span at all: it carries the trace context only (trace id, span id, sampled
 * flag), so log lines still name the trace and the next hop sees the decision.
 */
export interface TracingOptions {
  /** Where spans go. Omit to export over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. */
  exporter?: SpanExporter;
  /** `service.name` of the resource; default `OTEL_SERVICE_NAME`, else the node's service names. */
  serviceName?: string;
  /** Record spans with the tracer provider registered with `@opentelemetry/api` (e.g. by the OTel Node SDK). */
  global?: boolean;
  /**
   * The fraction of traces this node starts (a call or emit with no trace context) that are recorded,
   * 0 to 1; a trace that comes with a context follows its caller's decision. Default
   * `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, else 0.1. Not used with `global` (the global
   * provider's sampler decides).
   */
  sampleRatio?: number;
  /**
   * How many of the last finished spans this node keeps in memory for the ops API (`traces`, `trace`):
   * a ring, the oldest dropped first. Default `CHASSIS_TRACE_KEEP`, else 2000; 0 keeps none. Not with
   * `global` (the global provider's processors decide where spans go).
   */
  keepSpans?: number;
}

export const defaultKeepSpans = 2000;

/** The size of the span store: `keepSpans` when given, else `CHASSIS_TRACE_KEEP`, else the default. */
function keepSpansOf(keepSpans: number | undefined, env: NodeJS.ProcessEnv): number {
  const given = keepSpans ?? (env.CHASSIS_TRACE_KEEP?.trim() ? Number(env.CHASSIS_TRACE_KEEP) : defaultKeepSpans);
  if (!Number.isSafeInteger(given) || given < 0) {
    throw new ChassisError(
      'CONFIG',
      `${keepSpans === undefined ? 'CHASSIS_TRACE_KEEP' : 'tracing.keepSpans'} must be a whole number of spans, 0 or more (0 keeps none)`,
    );
  }
  return given;
}

const propagator = new W3CTraceContextPropagator();
const getter: TextMapGetter<Record<string, string>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/**
 * A W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) as the remote context it names, or undefined
 * when it is not one — what OpenTelemetry's W3C propagator accepts, without its regular expression:
 * lowercase hex, no all-zero ids, version `ff` refused, version `00` exactly 55 characters and a later
 * version's extra fields after a `-` ignored, surrounding spaces allowed.
 */
export function parseTraceparent(header: string): SpanContext | undefined {
  return readTraceparent(header, (traceId, spanId, traceFlags) => ({ traceId, spanId, traceFlags, isRemote: true }));
}

/** `parseTraceparent`, making what the caller wants of the fields: one object a message, not two. */
function readTraceparent<T>(
  header: string,
  make: (traceId: string, spanId: string, traceFlags: number) => T,
): T | undefined {
  const value = header.trim();
  if (value.length < 55 || value.charCodeAt(2) !== 45 || value.charCodeAt(35) !== 45 || value.charCodeAt(52) !== 45) {
    return undefined;
  }
  // Version 00 is exactly this long; a later one may add fields, after a '-'.
  const version00 = value.charCodeAt(0) === 48 && value.charCodeAt(1) === 48;
  if (value.length > 55 && (version00 || value.charCodeAt(55) !== 45)) return undefined;
  // Checked where the fields are, before any is cut out: most messages carry a valid one.
  if (
    (value.charCodeAt(0) === 102 && value.charCodeAt(1) === 102) || // version ff
    !isLowerHex(value, 0, 2) ||
    !isLowerHex(value, 3, 35) ||
    !isLowerHex(value, 36, 52) ||
    !isLowerHex(value, 53, 55)
  ) {
    return undefined;
  }
  const traceId = value.slice(3, 35);
  const spanId = value.slice(36, 52);
  if (traceId === INVALID_SPAN_CONTEXT.traceId || spanId === INVALID_SPAN_CONTEXT.spanId) return undefined;
  return make(traceId, spanId, hexValue(value.charCodeAt(53)) * 16 + hexValue(value.charCodeAt(54)));
}

const remoteSpan = (traceId: string, spanId: string, traceFlags: number): Span =>
  new ContextSpan(traceId, spanId, traceFlags);

/** Whether `text` from `start` up to `end` is lowercase hex digits only. */
function isLowerHex(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** A lowercase hex digit's value, from its character code. */
function hexValue(c: number): number {
  return c <= 57 ? c - 48 : c - 87;
}

/**
 * Trace and span ids from `Math.random`, as OpenTelemetry's own generator makes them: ids need to be
 * unique, not secret, and this costs a fraction of a system call for random bytes. The next trace id
 * can be set ahead: a root span is recorded with the id its sampling decision was made on.
 */
class Ids implements IdGenerator {
  next: string | undefined;

  generateTraceId(): string {
    const id = this.next ?? this.hex(4);
    this.next = undefined;
    return id;
  }

  generateSpanId(): string {
    return this.hex(2);
  }

  /** `words` random 32-bit words in hex; never all zeros, the invalid id. */
  hex(words: number): string {
    let id = '';
    for (let i = 1; i < words; i++) id += hex8(randomWord());
    return id + hex8(randomWord() || 1);
  }
}

/**
 * A span that only carries a trace context, its own `SpanContext`: what OpenTelemetry's non-recording
 * span does with one object instead of two, since one is made for every message that arrives.
 */
abstract class NotRecorded implements Span, SpanContext {
  abstract readonly traceId: string;
  abstract readonly spanId: string;
  abstract readonly traceFlags: number;

  spanContext(): SpanContext {
    return this;
  }
  setAttribute(_key: string, _value: AttributeValue): this {
    return this;
  }
  setAttributes(_attributes: Attributes): this {
    return this;
  }
  addEvent(_name: string): this {
    return this;
  }
  addLink(_link: Link): this {
    return this;
  }
  addLinks(_links: Link[]): this {
    return this;
  }
  setStatus(_status: SpanStatus): this {
    return this;
  }
  updateName(_name: string): this {
    return this;
  }
  end(): void {}
  isRecording(): boolean {
    return false;
  }
  recordException(_exception: Exception): void {}
}

/** The context an incoming message carries (`traceparent`), as the span its work is a child of. */
class ContextSpan extends NotRecorded {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceFlags: number;
  readonly isRemote: boolean;

  constructor(traceId: string, spanId: string, traceFlags: number, isRemote = true) {
    super();
    this.traceId = traceId;
    this.spanId = spanId;
    this.traceFlags = traceFlags;
    this.isRemote = isRemote;
  }
}

/**
 * Stands for "no span": no trace context to carry, nothing to end. One of this module's own classes, so
 * that the places every span passes through see as few kinds of span as can be.
 */
export const noSpan: Span = new ContextSpan(
  INVALID_SPAN_CONTEXT.traceId,
  INVALID_SPAN_CONTEXT.spanId,
  INVALID_SPAN_CONTEXT.traceFlags,
  false,
);

/**
 * A span recorded without the OpenTelemetry SDK, for a node whose spans go only to its store: one object
 * that is the span handlers see, its context, and, once ended, its record in the store. What the store
 * does not show it does not keep (events, links); attributes are the object it was started with, owned
 * from then on.
 */
class RecordedSpan implements Span, SpanContext, SpanRecord {
  readonly traceFlags = TraceFlags.SAMPLED;
  readonly isRemote = false;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly traceState: TraceState | undefined;
  name: string;
  readonly kind: SpanKind;
  readonly service: string | undefined;
  readonly attributes: Attributes;
  statusCode: SpanStatusCode = SpanStatusCode.UNSET;
  statusMessage: string | undefined = undefined;
  readonly startMs: number;
  durationMs = 0;
  private readonly store: SpanStore;
  private readonly started: number;
  private ended = false;

  constructor(
    store: SpanStore,
    ids: { traceId: string; spanId: string; parentSpanId: string | undefined; traceState: TraceState | undefined },
    name: string,
    kind: SpanKind,
    service: string | undefined,
    attributes: Attributes,
  ) {
    this.store = store;
    this.traceId = ids.traceId;
    this.spanId = ids.spanId;
    this.parentSpanId = ids.parentSpanId;
    this.traceState = ids.traceState;
    this.name = name;
    this.kind = kind;
    this.service = service;
    this.attributes = attributes;
    this.started = performance.now();
    this.startMs = performance.timeOrigin + this.started;
  }

  spanContext(): SpanContext {
    return this;
  }
  setAttribute(key: string, value: AttributeValue): this {
    if (!this.ended && value !== undefined && value !== null) this.attributes[key] = value;
    return this;
  }
  setAttributes(attributes: Attributes): this {
    for (const key of Object.keys(attributes)) this.setAttribute(key, attributes[key]!);
    return this;
  }
  addEvent(_name: string): this {
    return this;
  }
  addLink(_link: Link): this {
    return this;
  }
  addLinks(_links: Link[]): this {
    return this;
  }
  /** As the SDK's: UNSET changes nothing, OK is final, a message only with ERROR. */
  setStatus(status: SpanStatus): this {
    if (this.ended || status.code === SpanStatusCode.UNSET || this.statusCode === SpanStatusCode.OK) return this;
    this.statusCode = status.code;
    this.statusMessage =
      status.code === SpanStatusCode.ERROR && typeof status.message === 'string' ? status.message : undefined;
    return this;
  }
  updateName(name: string): this {
    if (!this.ended) this.name = name;
    return this;
  }
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.durationMs = performance.now() - this.started;
    this.store.add(this);
  }
  isRecording(): boolean {
    return !this.ended;
  }
  recordException(_exception: Exception): void {}
}

/**
 * The context of a trace started here: random words, formatted as ids only when something reads them
 * (a log line, an outgoing `traceparent`): most local calls never do, and formatting cost as much as
 * the rest of starting an unrecorded trace. Only the words' xor, which the sampling decision reads, is
 * drawn at once; the trace id's words are drawn when it is first read, the last one made so that their
 * xor is the one decided on (see `traceId`): a trace not sampled draws one random word, not four.
 */
class RootContext extends NotRecorded {
  readonly traceFlags = TraceFlags.NONE;
  /** The xor of the trace id's four words, as OpenTelemetry's `TraceIdRatioBased` sampler reads the id. */
  private readonly mixed = randomWord();
  private trace: string | undefined;
  private span: string | undefined;

  get traceId(): string {
    if (this.trace === undefined) {
      // Never all four zero, the invalid id: the first is never zero.
      const w0 = randomWord() || 1;
      const w1 = randomWord();
      const w2 = randomWord();
      // Uniform like the others, and the four xor to `mixed`: the id reads as sampled or not exactly as
      // it was decided.
      const w3 = (this.mixed ^ w0 ^ w1 ^ w2) >>> 0;
      this.trace = hexWords(w0, w1, w2, w3);
    }
    return this.trace;
  }

  get spanId(): string {
    this.span ??= hexWords(randomWord(), randomWord() || 1);
    return this.span;
  }

  /** The words xor-ed, as OpenTelemetry's `TraceIdRatioBased` sampler reads the id. */
  accumulated(): number {
    return this.mixed;
  }
}

function randomWord(): number {
  return (Math.random() * 0x100000000) >>> 0;
}

const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const hexText = Buffer.allocUnsafeSlow(32);

/**
 * Two or four words as one flat hex string: joining `hex8`s makes a string of each piece and of each
 * join, half a kilobyte of garbage for the ids of every trace started here that a request carries on.
 */
function hexWords(w0: number, w1: number, w2?: number, w3?: number): string {
  putHex(w0, 0);
  putHex(w1, 8);
  if (w2 === undefined || w3 === undefined) return hexText.toString('latin1', 0, 16);
  putHex(w2, 16);
  putHex(w3, 24);
  return hexText.toString('latin1', 0, 32);
}

function putHex(word: number, at: number): void {
  for (let shift = 28; shift >= 0; shift -= 4) hexText[at++] = HEX_DIGITS[(word >>> shift) & 15]!;
}

/** Each byte's two hex digits: four lookups format a word in a third of the time `toString(16)` takes. */
const BYTE_HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

function hex8(word: number): string {
  return (
    BYTE_HEX[word >>> 24]! + BYTE_HEX[(word >>> 16) & 0xff]! + BYTE_HEX[(word >>> 8) & 0xff]! + BYTE_HEX[word & 0xff]!
  );
}

export class Tracing {
  readonly tracer: Tracer;
  /**
   * Whether this node records spans at all. When not, no span is made: the parent's context (from an
   * incoming `traceparent`) is passed on untouched, so traces still continue through this node.
   */
  readonly recording: boolean;
  /** The last spans this node recorded, for the ops API; none with `keepSpans: 0` or `global`. */
  readonly store: SpanStore | undefined;
  private readonly provider: TracerProvider | undefined;
  /** The store, when spans go nowhere else: then they are recorded without the SDK. */
  private readonly storeOnly: SpanStore | undefined;
  private readonly ids: Ids;
  private readonly sampling: Sampling;

  constructor(
    provider: TracerProvider | undefined,
    options: { global?: boolean; sampling?: Sampling; ids?: Ids; store?: SpanStore } = {},
  ) {
    this.provider = provider;
    this.store = options.store;
    this.storeOnly = provider === undefined && options.global !== true ? options.store : undefined;
    this.recording = provider !== undefined || options.global === true || this.storeOnly !== undefined;
    this.tracer = (provider ?? trace).getTracer('@chassis/core');
    this.ids = options.ids ?? new Ids();
    this.sampling = options.sampling ?? samplingOf({});
  }

  static async create(
    options: TracingOptions & { nodeId: string; defaultServiceName: string; env?: NodeJS.ProcessEnv },
  ): Promise<Tracing> {
    const env = options.env ?? process.env;
    // Read even when nothing exports, so a wrong setting fails at start rather than once spans are on.
    const sampling = samplingOf({ ratio: options.sampleRatio, env });
    let exporter = options.exporter;
    if (!exporter && env.OTEL_EXPORTER_OTLP_ENDPOINT) {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
      exporter = new OTLPTraceExporter();
    }
    const keep = keepSpansOf(options.keepSpans, env);
    const global = options.global === true && !exporter;
    if (global || (!exporter && keep === 0)) return new Tracing(undefined, { global });
    const serviceName = options.serviceName ?? env.OTEL_SERVICE_NAME ?? options.defaultServiceName;
    const store = keep > 0 ? new SpanStore({ keep, nodeId: options.nodeId, serviceName }) : undefined;
    if (!exporter) return new Tracing(undefined, { sampling, ...(store ? { store } : {}) });
    const [sdk, { resourceFromAttributes }] = await Promise.all([
      import('@opentelemetry/sdk-trace'),
      import('@opentelemetry/resources'),
    ]);
    const processors: SpanProcessor[] = store ? [store] : [];
    // Spans kept in memory (tests) are there as soon as they end: no batching.
    const inMemory = exporter instanceof InMemorySpanExporter || exporter instanceof sdk.InMemorySpanExporter;
    processors.push(inMemory ? new sdk.SimpleSpanProcessor({ exporter }) : new sdk.BatchSpanProcessor({ exporter }));
    const ids = new Ids();
    return new Tracing(
      new sdk.TracerProvider({
        resource: resourceFromAttributes({ 'service.name': serviceName, 'service.instance.id': options.nodeId }),
        spanProcessors: processors,
        // The decision is made before the SDK is called (`unrecorded`): what reaches it is recorded.
        sampler: new sdk.AlwaysOnSampler(),
        idGenerator: ids,
      }),
      { sampling, ids, ...(store ? { store } : {}) },
    );
  }

  /** The trace context a message carries, as the span new work is a child of; `noSpan` for none. */
  extract(headers: Record<string, string>): Span {
    const traceparent = headers.traceparent;
    if (traceparent === undefined) return noSpan;
    // A trace state is rare: the propagator parses it. Else the traceparent is read by hand, since every
    // message carries one and the propagator's regular expression was 2% of a NATS RPC's CPU.
    if (headers.tracestate !== undefined) {
      return trace.getSpan(propagator.extract(ROOT_CONTEXT, headers, getter)) ?? noSpan;
    }
    return readTraceparent(traceparent, remoteSpan) ?? noSpan;
  }

  /** Writes the span's context into outgoing headers (`traceparent`, and `tracestate` if any). */
  inject(span: Span, headers: Record<string, string>): void {
    if (span === noSpan) return;
    const { traceId, spanId, traceFlags, traceState } = span.spanContext();
    headers.traceparent = `00-${traceId}-${spanId}-${traceFlags & TraceFlags.SAMPLED ? '01' : '00'}`;
    const state = traceState?.serialize();
    if (state) headers.tracestate = state;
  }

  /**
   * The span of work under `parent` when it is not to be recorded: the parent's own (its trace goes on
   * unrecorded, or this node records nothing), a context-only span starting an unsampled trace, or
   * `noSpan`. Undefined when it is to be recorded: then `record` makes the span. Two steps so that
   * work not recorded never builds a span's name or attributes.
   */
  unrecorded(parent: Span): Span | undefined {
    if (!this.recording) return parent;
    if (this.provider === undefined && this.storeOnly === undefined) return undefined; // the global provider samples
    if (parent !== noSpan) {
      return this.sampling.sampled(parent.spanContext()) ? undefined : parent;
    }
    const root = new RootContext();
    if (root.accumulated() < this.sampling.rootBound) {
      this.ids.next = root.traceId;
      return undefined;
    }
    return root;
  }

  /** A recorded span, once `unrecorded` has said it is to be. */
  record(name: string, kind: SpanKind, parent: Span, attributes: Attributes): Span {
    const store = this.storeOnly;
    if (store !== undefined) {
      const context = parent === noSpan ? undefined : parent.spanContext();
      const span = new RecordedSpan(
        store,
        {
          traceId: context === undefined ? this.ids.generateTraceId() : context.traceId,
          spanId: this.ids.generateSpanId(),
          parentSpanId: context?.spanId,
          traceState: context?.traceState,
        },
        name,
        kind,
        ownService(kind, attributes) ?? (parent instanceof RecordedSpan ? parent.service : store.defaultService),
        attributes,
      );
      this.ids.next = undefined;
      return span;
    }
    const span = this.tracer.startSpan(
      name,
      { kind, attributes },
      parent === noSpan ? ROOT_CONTEXT : trace.setSpan(ROOT_CONTEXT, parent),
    );
    this.ids.next = undefined;
    return span;
  }

  /**
   * A span of work inside `parent` (a transaction, a request to another system): recorded when `parent`
   * is, else one that only carries `parent`'s context (safe to end, and what to inject into a request).
   */
  child(parent: Span, name: string, kind: SpanKind, attributes: Attributes): Span {
    // One that carries a context only is that already: ending it does nothing.
    if (!parent.isRecording())
      return parent instanceof NotRecorded ? parent : trace.wrapSpanContext(parent.spanContext());
    // Copied: a recorded span owns its attributes, and these are the caller's.
    return this.record(name, kind, parent, { ...attributes });
  }

  /** Ends a span with the outcome of the work it covered; nothing for a span not recorded. */
  static end(span: Span, error?: unknown): void {
    if (!span.isRecording()) return;
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
