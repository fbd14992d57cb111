import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';

/**
 * Spans kept in a list, for tests: `createNode({ tracing: { exporter: new InMemorySpanExporter() } })`,
 * then `getFinishedSpans()`. OpenTelemetry's own class, written out here (it is that short) so that
 * `@chassis/core` can offer it without loading the tracing SDK: a node loads the SDK only when it
 * exports spans (`Tracing.create`), and most never do — which spares each process ~1.2 MB of heap and
 * 44 modules (the SDK, its resources and their semantic conventions).
 */
export class InMemorySpanExporter implements SpanExporter {
  private finished: ReadableSpan[] = [];
  private stopped = false;

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.stopped) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('Exporter has been stopped') });
      return;
    }
    this.finished.push(...spans);
    setTimeout(() => resultCallback({ code: ExportResultCode.SUCCESS }), 0);
  }

  shutdown(): Promise<void> {
    this.stopped = true;
    this.finished = [];
    return this.forceFlush();
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  reset(): void {
    this.finished = [];
  }

  getFinishedSpans(): ReadableSpan[] {
    return this.finished;
  }
}
