import { AsyncLocalStorage } from 'node:async_hooks';
import type { Client as FlagClient } from '@openfeature/server-sdk';
import type { Attributes, Span, SpanKind } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { ActionContract, EventContract, InputOf, OutputOf, PayloadInputOf } from './contracts.ts';
import type { Identity } from './identity.ts';
import type { CallPolicies, Fallback } from './policies/index.ts';

export interface CallOptions<C extends ActionContract = ActionContract> extends CallPolicies {
  /** Milliseconds to wait in all, retries included; never past the deadline inherited from the caller. */
  timeoutMs?: number;
  /** Absolute epoch ms after which the call is abandoned. */
  deadline?: number;
  /** Answers in place of the target when it fails or is unavailable (not for validation or domain errors). */
  fallback?: Fallback<InputOf<C>, OutputOf<C>>;
  /**
   * The token to call with, in place of the one this handler was called with: for a service acting
   * under its own identity (e.g. a saga step, long after the customer's token expired).
   */
  auth?: string;
}

export interface EmitOptions {
  /** An absolute epoch ms after which the event is no longer worth handling (it is dead-lettered). */
  deadline?: number;
}

/**
 * What a handler is given besides its input, and what `currentContext()` returns anywhere inside it.
 * Calls and emits made through it carry the correlation id, the causation id and the remaining deadline.
 */
export interface Context {
  readonly service: string;
  readonly nodeId: string;
  /** The id of the message being handled. */
  readonly messageId: string;
  /** One id for everything one outside request caused, from the edge to the last service. */
  readonly correlationId: string;
  /** The id of the message that caused this one. */
  readonly causationId: string | undefined;
  /**
   * Absolute epoch ms on this node's clock (a request's is counted from its arrival, so the caller's clock
   * does not enter); work after it is wasted, nobody waits for the answer.
   */
  readonly deadline: number;
  /** Aborts when the deadline passes or the node gives up on the work. */
  readonly signal: AbortSignal;
  /** 1 on first delivery of an event, higher on redeliveries; 1 for calls. */
  readonly attempt: number;
  /** The caller's signed identity token as it arrived; passed on with every call made from here. */
  readonly auth: string | undefined;
  /**
   * Who is calling, verified from `auth` by the node's `identity` verifier before the handler ran; unset
   * when the request carried no token or the node verifies none (event handlers: always unset).
   */
  readonly user: Identity | undefined;
  readonly log: Logger;
  /** The OpenTelemetry span of this handler; add attributes or events to it. */
  readonly span: Span;
  /** Feature flags (OpenFeature): `await ctx.flags.getBooleanValue('new-pricing', false)`. */
  readonly flags: FlagClient;
  /** Milliseconds left until the deadline (never negative). */
  remainingMs(): number;
  call<C extends ActionContract>(contract: C, input: InputOf<C>, options?: CallOptions<C>): Promise<OutputOf<C>>;
  emit<E extends EventContract>(contract: E, payload: PayloadInputOf<E>, options?: EmitOptions): Promise<void>;
  /**
   * A span for a part of this handler's work (a transaction, a request to another system), a child of
   * `span`; end it with `end()`. Recorded when this handler's trace is; otherwise it only carries the
   * trace context. Check `span.isRecording()` first where its name or attributes cost something to build.
   */
  startSpan(name: string, options?: { kind?: SpanKind; attributes?: Attributes }): Span;
  /**
   * `fetch`, traced: a client span (`http.request.method`, `url.full`, `http.response.status_code`; an
   * error on a failure or a 5xx) when this handler's trace is recorded, and the trace context sent in
   * `traceparent` / `tracestate` either way, so the server called continues the trace.
   */
  fetch(url: string | URL, init?: RequestInit): Promise<Response>;
  /**
   * The trace context of `span` (default: this handler's), as `traceparent` and `tracestate` headers, for
   * a request made by another client than `fetch` (e.g. `node:http`, a tenth of `fetch`'s CPU a request)
   * under a client span from `startSpan`: the server called continues the trace. Empty when nothing is
   * traced.
   */
  traceHeaders(span?: Span): Record<string, string>;
}

export const contextStorage = new AsyncLocalStorage<Context>();

/** The context of the handler running now, if any. */
export function currentContext(): Context | undefined {
  return contextStorage.getStore();
}

/**
 * `contextStorage.run(ctx, fn, …args)`, for the handler of a request. Node 24's `run` enters the store
 * with a new frame (a Map copying the current one) and leaves it with another (a copy again, holding
 * the store as `undefined`): two small Maps a handler.
 *
 * Not an `AsyncResource`'s `runInAsyncScope`, which holds the caller's frame itself and spares the
 * second Map: it also pushes the resource on the async id stack, and under a callback from native code
 * (an HTTP request's parser, a socket's data — where a request's handler runs) that push leaves Node's
 * list of running resources longer than the native stack below it, so the native scope's exit fixes the
 * list's length through V8's slow path on every request. In the gateway benchmark that exit was 1.4 µs
 * of a request's server CPU (0.07 in bare Fastify's); a tight loop of local calls never shows it.
 */
export function runInContext<A, B, C, R>(ctx: Context, fn: (a: A, b: B, c: C) => R, a: A, b: B, c: C): R {
  return contextStorage.run(ctx, fn, a, b, c);
}
