import { type Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
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
    ? tracing.record(`${method} ${target.host}${target.pathname}`, SpanKind.CLIENT, parent, {
        'http.request.method': method,
        'url.full': withoutCredentials(target),
        'server.address': target.hostname,
        ...(target.port ? { 'server.port': Number(target.port) } : {}),
      })
    : parent;
  const context: Record<string, string> = {};
  tracing.inject(span, context);
  const headers = new Headers(init?.headers);
  for (const [name, value] of Object.entries(context)) headers.set(name, value);
  if (!span.isRecording()) return fetch(target, { ...init, headers });
  try {
    const response = await fetch(target, { ...init, headers });
    span.setAttribute('http.response.status_code', response.status);
    if (response.status >= 500) {
      span.setAttribute('error.type', String(response.status));
      span.setStatus({ code: SpanStatusCode.ERROR, message: `${target.host} answered ${response.status}` });
    }
    return response;
  } catch (error) {
    span.setAttribute('error.type', error instanceof Error ? error.name : 'Error');
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? (causeOf(error) ?? error.message) : String(error),
    });
    throw error;
  } finally {
    span.end();
  }
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
