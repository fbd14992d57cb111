import { useState } from 'preact/hooks';
import { answered, api, OpsError } from '../api.ts';
import { ErrorNote, Filter, Json, matches, Section, timeOf, useFocusHeading, useLoad } from '../ui.tsx';

interface Backlog {
  subscription: string;
  event: string;
  service: string;
  backlog: number | null;
  deadLetters: number | null;
}

interface QueueRow extends Backlog {
  nodes: string[];
}

interface DeadQueue {
  queue: string;
  kind: 'event' | 'rpc';
  count: number;
  nodes: string[];
}

interface Letter {
  id: string;
  queue: string;
  reason: string;
  at: string;
  event?: string;
  payload?: unknown;
}

async function loadQueues(): Promise<{ backlogs: QueueRow[]; dead: DeadQueue[] }> {
  const [backlogAnswers, dlqAnswers] = await Promise.all([
    api.each<Backlog[]>('backlogs'),
    api.each<{ queue: string; kind: 'event' | 'rpc'; count: number }[]>('dlq.list'),
  ]);
  const backlogs = new Map<string, QueueRow>();
  for (const { nodeId, output } of answered(backlogAnswers)) {
    for (const b of output) {
      const known = backlogs.get(b.subscription);
      // A subscription's queue is one queue however many nodes consume it: its figures are the broker's.
      if (known) known.nodes.push(nodeId);
      else backlogs.set(b.subscription, { ...b, nodes: [nodeId] });
    }
  }
  const dead = new Map<string, DeadQueue>();
  for (const { nodeId, output } of answered(dlqAnswers)) {
    for (const q of output) {
      const known = dead.get(q.queue);
      if (known) {
        known.nodes.push(nodeId);
        known.count = Math.max(known.count, q.count);
      } else dead.set(q.queue, { ...q, nodes: [nodeId] });
    }
  }
  const byName = (a: { queue?: string; subscription?: string }, b: { queue?: string; subscription?: string }) =>
    (a.queue ?? a.subscription ?? '').localeCompare(b.queue ?? b.subscription ?? '');
  // Queues holding letters first: they are what an operator came for.
  const deadFirst = (a: DeadQueue, b: DeadQueue) => Number(b.count > 0) - Number(a.count > 0) || byName(a, b);
  return { backlogs: [...backlogs.values()].sort(byName), dead: [...dead.values()].sort(deadFirst) };
}

export function Queues({ selected }: { selected?: string }) {
  const heading = useFocusHeading('queues');
  const queues = useLoad(loadQueues, [], 5_000);
  const [filter, setFilter] = useState('');
  const [onlyDead, setOnlyDead] = useState(false);
  const dead = (queues.data?.dead ?? []).filter((q) => matches(filter, q.queue) && (!onlyDead || q.count > 0));
  const current = queues.data?.dead.find((q) => q.queue === selected);
  return (
    <div class="view">
      <h1 ref={heading} tabIndex={-1}>
        Queues
      </h1>
      {queues.error && <ErrorNote error={queues.error} what="Reading the queues" />}
      <div class="toolbar">
        <Filter label="Find a queue, event or service" value={filter} onInput={setFilter} />
        <label class="check">
          <input
            type="checkbox"
            checked={onlyDead}
            onChange={(e) => setOnlyDead((e.target as HTMLInputElement).checked)}
          />{' '}
          only queues with dead letters
        </label>
      </div>
      <div class="columns wide-right">
        <Section title="Dead letters">
          <table class="dead-queues">
            <thead>
              <tr>
                <th scope="col">Queue</th>
                <th scope="col">Kind</th>
                <th scope="col">Letters</th>
              </tr>
            </thead>
            <tbody>
              {dead.map((q) => (
                <tr key={q.queue} class={q.count > 0 ? 'has-dead' : undefined}>
                  <td>
                    <a
                      href={`#/queues/${encodeURIComponent(q.queue)}`}
                      aria-current={q.queue === selected ? 'true' : undefined}
                    >
                      {q.queue}
                    </a>
                  </td>
                  <td>{q.kind}</td>
                  <td>{q.count}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Section>
        <div>
          {current && (
            <DeadLetters
              key={current.queue}
              queue={current}
              backlogs={queues.data?.backlogs ?? []}
              onChange={queues.reload}
            />
          )}
          <Section title="Backlogs per subscription">
            <table class="backlogs">
              <thead>
                <tr>
                  <th scope="col">Subscription</th>
                  <th scope="col">Event</th>
                  <th scope="col">Waiting</th>
                  <th scope="col">Dead</th>
                  <th scope="col">Nodes</th>
                </tr>
              </thead>
              <tbody>
                {(queues.data?.backlogs ?? [])
                  .filter(
                    (b) =>
                      matches(filter, b.subscription, b.event, b.service) && (!onlyDead || (b.deadLetters ?? 0) > 0),
                  )
                  .map((b) => (
                    <tr key={b.subscription}>
                      <td>{b.subscription}</td>
                      <td>{b.event}</td>
                      <td>{b.backlog ?? '?'}</td>
                      <td>{b.deadLetters ?? '?'}</td>
                      <td>{b.nodes.length}</td>
                    </tr>
                  ))}
              </tbody>
            </table>
          </Section>
        </div>
      </div>
    </div>
  );
}

function DeadLetters({ queue, backlogs, onChange }: { queue: DeadQueue; backlogs: QueueRow[]; onChange: () => void }) {
  const letters = useLoad(
    () =>
      api.ops<{ queue: string; count: number; letters: Letter[] }>(
        'dlq.show',
        { queue: queue.queue, limit: 50 },
        { nodeId: queue.nodes[0] },
      ),
    [queue.queue, queue.count],
  );
  const [result, setResult] = useState<{ ok: boolean; text: string; detail?: unknown }>();
  const [busy, setBusy] = useState(false);
  // A replay runs the handler on a node that runs the subscription.
  const consumer = backlogs.find((b) => b.subscription === queue.queue)?.nodes[0] ?? queue.nodes[0];

  async function act(kind: 'replay' | 'purge', ids?: string[]) {
    setBusy(true);
    try {
      if (kind === 'replay') {
        const out = await api.ops<{
          replayed: number;
          handled: string[];
          failed: { id: string; reason: string }[];
          remaining: number;
        }>('dlq.replay', { queue: queue.queue, ...(ids ? { ids } : {}) }, { nodeId: consumer, timeoutMs: 120_000 });
        setResult({
          ok: out.failed.length === 0,
          text: `Replayed ${out.replayed}: ${out.handled.length} handled, ${out.failed.length} failed again, ${out.remaining} left`,
          ...(out.failed.length ? { detail: out.failed } : {}),
        });
      } else {
        const out = await api.ops<{ removed: number; remaining: number }>(
          'dlq.purge',
          { queue: queue.queue, ...(ids ? { ids } : { all: true }) },
          { nodeId: queue.nodes[0] },
        );
        setResult({ ok: true, text: `Purged ${out.removed}, ${out.remaining} left` });
      }
    } catch (error) {
      setResult({ ok: false, text: error instanceof OpsError ? `${error.code}: ${error.message}` : String(error) });
    } finally {
      setBusy(false);
      onChange();
      letters.reload();
    }
  }

  const rpc = queue.kind === 'rpc';
  return (
    <Section
      title={`Dead letters of ${queue.queue}`}
      actions={
        <div class="buttons">
          <button type="button" disabled={busy || rpc || queue.count === 0} onClick={() => act('replay')}>
            Replay all
          </button>
          <button type="button" class="danger" disabled={busy || queue.count === 0} onClick={() => act('purge')}>
            Purge all
          </button>
        </div>
      }
    >
      {rpc && (
        <p class="muted">Requests cannot be replayed (nobody waits for their answer): show them, then purge them.</p>
      )}
      {result && (
        <div class={result.ok ? 'ok-note' : 'error'} role="status">
          {result.text}
          {result.detail !== undefined && <Json value={result.detail} label="Failures" />}
        </div>
      )}
      {letters.error && <ErrorNote error={letters.error} what="Reading the dead letters" />}
      {letters.data && letters.data.letters.length === 0 && <p class="muted">No dead letter in this queue.</p>}
      <ul class="letters">
        {letters.data?.letters.map((letter) => (
          <li key={letter.id}>
            <p>
              <strong>{letter.event ?? letter.queue}</strong>{' '}
              <span class="muted">
                {timeOf(letter.at)} · {letter.id}
              </span>
            </p>
            <p class="reason">{letter.reason}</p>
            <Json value={letter.payload} label="Payload" />
            <div class="buttons">
              <button type="button" disabled={busy || rpc} onClick={() => act('replay', [letter.id])}>
                Replay
              </button>
              <button type="button" class="danger" disabled={busy} onClick={() => act('purge', [letter.id])}>
                Purge
              </button>
            </div>
          </li>
        ))}
      </ul>
    </Section>
  );
}
