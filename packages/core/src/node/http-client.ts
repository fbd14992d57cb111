import { type Attributes, type Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { Tracing } from '../observability/tracing.ts';

/**
 * A handler's `ctx.fetch`: the request under a client span when the handler's trace is recorded, and
 * with the trace context (`traceparent`, `tracestate`) either way, so that the server called — another
 * system, or a gateway of ours — continues the trace. The span ends when the response's headers arrive:
 * what it measures is the server's answer, not how long the handler takes to read the body.
 */
export async function tracedFetch(
  tracing: Tracing,
  parent: Span,
  url: string | URL,
  init: RequestInit | undefined,
): Promise<Response> {
  const target = new URL(url);
  const method = (init?.method ?? 'GET').toUpperCase();
  const span = parent.isRecording()
    ? tracing.record(
        `${method} ${target.host}${target.pathname}`,
        SpanKind.CLIENT,
        parent,
        httpClientAttributes(method, target),
      )
    : parent;
  const context: Record<string, string> = {};
  tracing.inject(span, context);
  const headers = new Headers(init?.headers);
  for (const [name, value] of Object.entries(context)) headers.set(name, value);
  if (!span.isRecording()) return fetch(target, { ...init, headers });
  try {
    const response = await fetch(target, { ...init, headers });
    recordHttpAnswer(span, target, response.status);
    return response;
  } catch (error) {
    recordHttpFailure(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/**
 * A client span's attributes for an HTTP request (OpenTelemetry's HTTP conventions), as `ctx.fetch` records
 * them: for a handler that makes requests with another client under a span of its own (`ctx.startSpan`).
 */
export function httpClientAttributes(method: string, target: URL): Attributes {
  return {
    'http.request.method': method,
    'url.full': withoutCredentials(target),
    'server.address': target.hostname,
    ...(target.port ? { 'server.port': Number(target.port) } : {}),
  };
}

/** The server's answer on a client span: its status, and an error status for a 5xx. */
export function recordHttpAnswer(span: Span, target: URL, status: number): void {
  if (!span.isRecording()) return;
  span.setAttribute('http.response.status_code', status);
  if (status >= 500) {
    span.setAttribute('error.type', String(status));
    span.setStatus({ code: SpanStatusCode.ERROR, message: `${target.host} answered ${status}` });
  }
}

/** A request that got no answer, on its client span. */
export function recordHttpFailure(span: Span, error: unknown): void {
  if (!span.isRecording()) return;
  span.setAttribute('error.type', error instanceof Error ? error.name : 'Error');
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: error instanceof Error ? (causeOf(error) ?? error.message) : String(error),
  });
}

/** The URL as a span may show it: no user name or password. */
function withoutCredentials(url: URL): string {
  if (url.username === '' && url.password === '') return url.href;
  const shown = new URL(url);
  shown.username = '';
  shown.password = '';
  return shown.href;
}

/** `fetch failed` says little; its cause (`ECONNREFUSED …`) says what happened. */
function causeOf(error: Error): string | undefined {
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Error ? `${error.message}: ${cause.message}` : undefined;
}
