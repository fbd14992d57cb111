import { useState } from 'preact/hooks';
import { api, type NodeAnswer, OpsError } from '../api.ts';
import { ErrorNote, Filter, matches, Section, timeOf, useFocusHeading, useLoad } from '../ui.tsx';

interface TraceSummary {
  traceId: string;
  root: string;
  startedAt: string;
  durationMs: number;
  spans: number;
  services: string[];
  error: boolean;
}

interface Span {
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: string;
  service?: string;
  nodeId: string;
  startedAt: string;
  startMs: number;
  durationMs: number;
  status: 'ok' | 'error' | 'unset';
  error?: string;
  attributes: Record<string, string | number | boolean>;
}

/** Thrown when no node has the `traces`/`trace` ops actions: an older node, or one that records none. */
class NoTraces extends Error {}

/** The nodes' answers, or NoTraces when every one says UNKNOWN_ACTION. */
function outputsOf<T>(answers: NodeAnswer<T>[]): T[] {
  const ok = answers.filter((a) => a.error === undefined).map((a) => a.output as T);
  if (ok.length > 0 || answers.length === 0) return ok;
  if (answers.every((a) => a.error?.code === 'UNKNOWN_ACTION')) throw new NoTraces();
  throw new OpsError(answers.find((a) => a.error?.code !== 'UNKNOWN_ACTION')!.error!);
}

/** Every node's traces merged by id: a trace crossing nodes is one row. */
async function loadTraces(): Promise<TraceSummary[] | 'none'> {
  try {
    const byId = new Map<string, TraceSummary>();
    for (const list of outputsOf(await api.each<TraceSummary[]>('traces', { limit: 100 }))) {
      for (const t of list) {
        const known = byId.get(t.traceId);
        if (!known) {
          byId.set(t.traceId, { ...t, services: [...t.services] });
          continue;
        }
        const start = Math.min(Date.parse(known.startedAt), Date.parse(t.startedAt));
        const end = Math.max(Date.parse(known.startedAt) + known.durationMs, Date.parse(t.startedAt) + t.durationMs);
        if (Date.parse(t.startedAt) < Date.parse(known.startedAt)) known.root = t.root;
        known.startedAt = new Date(start).toISOString();
        known.durationMs = end - start;
        known.spans += t.spans;
        known.services = [...new Set([...known.services, ...t.services])];
        known.error ||= t.error;
      }
    }
    return [...byId.values()].sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt));
  } catch (error) {
    if (error instanceof NoTraces) return 'none';
    throw error;
  }
}

async function loadTrace(traceId: string): Promise<Span[] | 'none'> {
  try {
    const bySpan = new Map<string, Span>();
    for (const answer of outputsOf(await api.each<{ spans: Span[] }>('trace', { traceId }))) {
      for (const span of answer.spans) bySpan.set(span.spanId, span);
    }
    return [...bySpan.values()];
  } catch (error) {
    if (error instanceof NoTraces) return 'none';
    throw error;
  }
}

function NoTracesNote() {
  return (
    <div class="notice" role="status">
      <strong>This node does not record traces.</strong>
      <p>
        Its ops API has no <code>traces</code> action (the nodes answer UNKNOWN_ACTION): run a Chassis version whose
        nodes keep their recent spans, with tracing sampled (OTEL_TRACES_SAMPLER_ARG).
      </p>
    </div>
  );
}

export function Traces({ traceId }: { traceId?: string }) {
  const heading = useFocusHeading(`traces ${traceId ?? ''}`);
  return (
    <div class="view">
      <h1 ref={heading} tabIndex={-1}>
        {traceId ? 'Trace' : 'Traces'}
      </h1>
      {traceId ? <Waterfall traceId={traceId} /> : <TraceList />}
    </div>
  );
}

function TraceList() {
  const traces = useLoad(loadTraces, [], 5_000);
  const [filter, setFilter] = useState('');
  if (traces.error) return <ErrorNote error={traces.error} what="Listing the traces" />;
  if (traces.data === 'none') return <NoTracesNote />;
  const list = (traces.data ?? []).filter((t) => matches(filter, t.traceId, t.root, ...t.services));
  return (
    <Section title={`Recent traces (${list.length})`}>
      <Filter label="Find by service, operation or id" value={filter} onInput={setFilter} />
      <table class="traces">
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">Root</th>
            <th scope="col">Services</th>
            <th scope="col">Spans</th>
            <th scope="col">Duration</th>
          </tr>
        </thead>
        <tbody>
          {list.map((t) => (
            <tr key={t.traceId} class={t.error ? 'failed' : undefined}>
              <td>{timeOf(t.startedAt)}</td>
              <td>
                <a href={`#/traces/${t.traceId}`}>{t.root}</a>
                {t.error && (
                  <>
                    {' '}
                    <span class="tag failed">error</span>
                  </>
                )}
              </td>
              <td>{t.services.join(', ')}</td>
              <td>{t.spans}</td>
              <td>{t.durationMs.toFixed(1)} ms</td>
            </tr>
          ))}
        </tbody>
      </table>
      {traces.data && list.length === 0 && (
        <p class="muted">No trace recorded yet: call an action from the explorer.</p>
      )}
    </Section>
  );
}

/** The spans as a tree (children under their parent, by start), each with its depth. */
function ordered(spans: Span[]): { span: Span; depth: number }[] {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, Span[]>();
  const roots: Span[] = [];
  for (const span of spans) {
    if (span.parentSpanId && ids.has(span.parentSpanId)) {
      children.set(span.parentSpanId, [...(children.get(span.parentSpanId) ?? []), span]);
    } else roots.push(span);
  }
  const out: { span: Span; depth: number }[] = [];
  const visit = (span: Span, depth: number) => {
    out.push({ span, depth });
    for (const child of (children.get(span.spanId) ?? []).sort((a, b) => a.startMs - b.startMs))
      visit(child, depth + 1);
  };
  for (const root of roots.sort((a, b) => a.startMs - b.startMs)) visit(root, 0);
  return out;
}

function Waterfall({ traceId }: { traceId: string }) {
  const trace = useLoad(() => loadTrace(traceId), [traceId]);
  const [open, setOpen] = useState<string>();
  if (trace.error) return <ErrorNote error={trace.error} what="Reading the trace" />;
  if (trace.data === 'none') return <NoTracesNote />;
  if (!trace.data) return <p class="muted">Reading the trace…</p>;
  const spans = trace.data;
  const back = (
    <p>
      <a href="#/traces">All traces</a> · <code>{traceId}</code>{' '}
      <button type="button" class="secondary" onClick={trace.reload}>
        Refresh
      </button>
    </p>
  );
  if (spans.length === 0) {
    return (
      <>
        {back}
        <div class="notice" role="status">
          No node holds a span of this trace (yet): it may not have been sampled, or its spans were overwritten.
        </div>
      </>
    );
  }
  const start = Math.min(...spans.map((s) => s.startMs));
  const end = Math.max(...spans.map((s) => s.startMs + s.durationMs));
  const total = Math.max(end - start, 0.001);
  const services = [...new Set(spans.map((s) => s.service).filter(Boolean))];
  return (
    <>
      {back}
      <p>
        {spans.length} spans across {services.length} services ({services.join(', ')}) on{' '}
        {new Set(spans.map((s) => s.nodeId)).size} node(s), {total.toFixed(1)} ms.
      </p>
      <ol class="waterfall" aria-label="Waterfall">
        {ordered(spans).map(({ span, depth }) => (
          <li key={span.spanId} class={`span status-${span.status}`}>
            <button
              type="button"
              class="span-row"
              aria-expanded={open === span.spanId}
              onClick={() => setOpen(open === span.spanId ? undefined : span.spanId)}
            >
              <span class="span-name" style={{ paddingLeft: `${depth * 14}px` }}>
                <span class="service-chip">{span.service ?? '?'}</span> {span.name}
              </span>
              <span class="span-track">
                <span
                  class="span-bar"
                  style={{
                    left: `${((span.startMs - start) / total) * 100}%`,
                    width: `max(2px, ${(span.durationMs / total) * 100}%)`,
                  }}
                />
              </span>
              <span class="span-ms">{span.durationMs.toFixed(1)} ms</span>
            </button>
            {open === span.spanId && (
              <dl class="attributes">
                <dt>kind</dt>
                <dd>{span.kind}</dd>
                <dt>node</dt>
                <dd>{span.nodeId}</dd>
                <dt>status</dt>
                <dd>
                  {span.status}
                  {span.error ? `: ${span.error}` : ''}
                </dd>
                {Object.entries(span.attributes).map(([key, value]) => (
                  <>
                    <dt key={`k${key}`}>{key}</dt>
                    <dd key={`v${key}`}>{String(value)}</dd>
                  </>
                ))}
              </dl>
            )}
          </li>
        ))}
      </ol>
    </>
  );
}
