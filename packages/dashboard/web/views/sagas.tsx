import { useRef, useState } from 'preact/hooks';
import { api, type NodeAnswer, OpsError } from '../api.ts';
import { ErrorNote, Filter, Json, matches, Section, timeOf, useFocusHeading, useLoad } from '../ui.tsx';

const STATUSES = ['running', 'compensating', 'completed', 'compensated', 'failed'] as const;

interface SagaSummary {
  id: string;
  saga: string;
  status: string;
  attempt: number;
  data: unknown;
  error?: unknown;
  createdAt: string;
  updatedAt: string;
}

interface SagaList {
  service: string;
  sagas: string[];
  counts: { saga: string; status: string; count: number }[];
  instances: SagaSummary[];
}

interface HistoryEntry {
  seq: number;
  kind: string;
  node?: string;
  at: string;
  step?: string;
  attempt?: number;
  error?: unknown;
  reason?: string;
}

interface Listed extends SagaSummary {
  service: string;
  nodeId: string;
}

/** Every node's saga instances (a database shared by nodes lists one twice: kept once), newest first. */
async function loadSagas(status: string): Promise<{ instances: Listed[]; counts: Map<string, number> } | 'none'> {
  const answers: NodeAnswer<SagaList[]>[] = await api.each<SagaList[]>('sagas.list', {
    limit: 200,
    ...(status ? { status } : {}),
  });
  const ok = answers.filter((a) => !a.error);
  if (ok.length === 0 && answers.length > 0) {
    if (answers.every((a) => a.error?.code === 'UNKNOWN_ACTION')) return 'none';
    throw new OpsError(answers[0]!.error!);
  }
  const byId = new Map<string, Listed>();
  const counts = new Map<string, number>();
  const countedServices = new Set<string>();
  for (const { nodeId, output } of ok) {
    for (const list of output ?? []) {
      for (const instance of list.instances) {
        if (!byId.has(instance.id)) byId.set(instance.id, { ...instance, service: list.service, nodeId });
      }
      if (countedServices.has(list.service)) continue;
      countedServices.add(list.service);
      for (const c of list.counts) counts.set(c.status, (counts.get(c.status) ?? 0) + c.count);
    }
  }
  return { instances: [...byId.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt)), counts };
}

export function Sagas({ selected }: { selected?: string }) {
  const heading = useFocusHeading('sagas');
  const [status, setStatus] = useState('');
  const [filter, setFilter] = useState('');
  const sagas = useLoad(() => loadSagas(status), [status], 5_000);
  const remembered = useRef<Listed | undefined>(undefined);
  if (sagas.data === 'none') {
    return (
      <div class="view">
        <h1 ref={heading} tabIndex={-1}>
          Sagas
        </h1>
        <div class="notice" role="status">
          No node runs sagas: the data kit (<code>dataExtension()</code>) adds the <code>sagas.*</code> ops actions.
        </div>
      </div>
    );
  }
  const loaded = sagas.data;
  const list = (loaded?.instances ?? []).filter((s) =>
    matches(filter, s.id, s.saga, s.service, JSON.stringify(s.data)),
  );
  // The instance shown stays shown when a refresh or the state filter leaves it out (a retried saga is no
  // longer `failed`): it is read by itself.
  const listed = loaded?.instances.find((s) => s.id === selected);
  if (listed) remembered.current = listed;
  const current = listed ?? (remembered.current?.id === selected ? remembered.current : undefined);
  return (
    <div class="view">
      <h1 ref={heading} tabIndex={-1}>
        Sagas
      </h1>
      {sagas.error && <ErrorNote error={sagas.error} what="Listing the sagas" />}
      <div class="toolbar">
        <div class="field inline">
          <label for="saga-status">State</label>
          <select
            id="saga-status"
            name="status"
            value={status}
            onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}
          >
            <option value="">every state</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s} ({loaded?.counts.get(s) ?? 0})
              </option>
            ))}
          </select>
        </div>
        <Filter label="Find by id, saga or data" value={filter} onInput={setFilter} />
      </div>
      <div class="split">
        <nav class="side" aria-label="Saga instances">
          <ul class="saga-list">
            {list.map((s) => (
              <li key={s.id}>
                <a href={`#/sagas/${s.id}`} aria-current={s.id === selected ? 'true' : undefined}>
                  <span class={`tag ${s.status}`}>{s.status}</span> <span class="name">{s.saga}</span>
                  <span class="meta">
                    {s.id.slice(0, 8)}… · {timeOf(s.createdAt)}
                  </span>
                </a>
              </li>
            ))}
          </ul>
          {loaded && list.length === 0 && <p class="muted">No saga instance{status ? ` ${status}` : ''}.</p>}
        </nav>
        <div class="main">
          {current ? (
            <SagaDetail key={current.id} summary={current} onChange={sagas.reload} />
          ) : (
            <p class="muted">Pick an instance to see its steps and compensations.</p>
          )}
        </div>
      </div>
    </div>
  );
}

function SagaDetail({ summary, onChange }: { summary: Listed; onChange: () => void }) {
  const instance = useLoad(
    () =>
      api.ops<SagaSummary & { history: HistoryEntry[] }>(
        'sagas.show',
        { id: summary.id, service: summary.service },
        { nodeId: summary.nodeId },
      ),
    [summary.id, summary.status, summary.updatedAt],
    3_000,
  );
  const [acted, setActed] = useState<{ ok: boolean; text: string }>();
  async function act(action: 'sagas.retry' | 'sagas.abort') {
    try {
      const next = await api.ops<SagaSummary>(
        action,
        {
          id: summary.id,
          service: summary.service,
          ...(action === 'sagas.abort' ? { reason: 'aborted from the dashboard' } : {}),
        },
        { nodeId: summary.nodeId },
      );
      setActed({ ok: true, text: `${action === 'sagas.retry' ? 'Retried' : 'Aborted'}: now ${next.status}` });
    } catch (error) {
      setActed({ ok: false, text: error instanceof OpsError ? `${error.code}: ${error.message}` : String(error) });
    }
    onChange();
    instance.reload();
  }
  const data = instance.data;
  const status = data?.status ?? summary.status;
  return (
    <Section
      title={`${summary.saga} ${summary.id}`}
      actions={
        <div class="buttons">
          <button type="button" disabled={status !== 'failed'} onClick={() => act('sagas.retry')}>
            Retry
          </button>
          <button type="button" class="danger" disabled={status !== 'running'} onClick={() => act('sagas.abort')}>
            Abort
          </button>
        </div>
      }
    >
      <p>
        <span class={`tag ${status}`}>{status}</span> service {summary.service}, attempt{' '}
        {data?.attempt ?? summary.attempt}, started {timeOf(summary.createdAt)}, last change{' '}
        {timeOf(data?.updatedAt ?? summary.updatedAt)}
      </p>
      {acted && (
        <p class={acted.ok ? 'ok-note' : 'error'} role="status">
          {acted.text}
        </p>
      )}
      {instance.error && <ErrorNote error={instance.error} what="Reading the saga" />}
      {data && (
        <ol class="timeline" aria-label="Saga history">
          {data.history.map((h) => (
            <li
              key={h.seq}
              class={h.kind.includes('compensat') ? 'compensation' : h.kind.includes('fail') ? 'failed' : undefined}
            >
              <span class="when">{timeOf(h.at)}</span> <strong>{h.kind.replaceAll('_', ' ')}</strong>
              {h.step && <> · step {h.step}</>}
              {h.attempt !== undefined && <> · attempt {h.attempt}</>}
              {h.node && <span class="muted"> · {h.node}</span>}
              {h.reason && <div class="muted">{h.reason}</div>}
              {h.error !== undefined && <Json value={h.error} label="error" />}
            </li>
          ))}
        </ol>
      )}
      <h3>Data</h3>
      <Json value={summary.data} label="Saga data" />
    </Section>
  );
}
