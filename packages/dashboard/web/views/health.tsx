import { useState } from 'preact/hooks';
import { answered, api } from '../api.ts';
import { ErrorNote, Filter, matches, Section, Sparkline, timeOf, useFocusHeading, useLoad } from '../ui.tsx';

interface RegisteredNode {
  nodeId: string;
  host: string;
  pid: number;
  transport: string;
  status: string;
  lastSeen?: number;
  services: { name: string }[];
}

interface Check {
  componentId?: string;
  status: 'pass' | 'warn' | 'fail';
  output?: string;
  observedValue?: unknown;
}

interface HealthReport {
  status: 'pass' | 'warn' | 'fail';
  checks?: Record<string, Check[]>;
}

interface Health {
  nodeId: string;
  live: HealthReport;
  ready: HealthReport;
}

interface Policies {
  nodeId: string;
  breakers: { target: string; state: string }[];
  bulkheads: { target: string; inFlight: number; queued: number; maxConcurrent: number }[];
}

async function loadHealth() {
  const [nodes, health, policies] = await Promise.all([
    api.ops<RegisteredNode[]>('nodes'),
    api.each<Health>('health'),
    api.each<Policies>('policies'),
  ]);
  return {
    nodes,
    health: answered(health).map((a) => a.output),
    unanswered: health.filter((a) => a.error),
    policies: answered(policies).map((a) => a.output),
  };
}

export function HealthView() {
  const heading = useFocusHeading('health');
  const state = useLoad(loadHealth, [], 5_000);
  const red = useLoad(api.red, [], 5_000);
  const [filter, setFilter] = useState('');
  const data = state.data;
  const readyOf = (nodeId: string) => data?.health.find((h) => h.nodeId === nodeId)?.ready.status;
  return (
    <div class="view">
      <h1 ref={heading} tabIndex={-1}>
        Health
      </h1>
      {state.error && <ErrorNote error={state.error} what="Reading the nodes' health" />}
      {data && (
        <>
          <Section title={`Nodes (${data.nodes.length})`}>
            <table class="nodes">
              <thead>
                <tr>
                  <th scope="col">Node</th>
                  <th scope="col">Host / pid</th>
                  <th scope="col">Transport</th>
                  <th scope="col">Status</th>
                  <th scope="col">Ready</th>
                  <th scope="col">Services</th>
                  <th scope="col">Last heard</th>
                </tr>
              </thead>
              <tbody>
                {data.nodes.map((n) => (
                  <tr key={n.nodeId}>
                    <td>
                      <code>{n.nodeId}</code>
                    </td>
                    <td>
                      {n.host} / {n.pid}
                    </td>
                    <td>{n.transport}</td>
                    <td>{n.status}</td>
                    <td>
                      <span class={`tag ${readyOf(n.nodeId) ?? 'unknown'}`}>{readyOf(n.nodeId) ?? 'no answer'}</span>
                    </td>
                    <td>{n.services.length}</td>
                    <td>{timeOf(n.lastSeen)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {data.unanswered.map((a) => (
              <p key={a.nodeId} class="error">
                {a.nodeId}: {a.error?.code} {a.error?.message}
              </p>
            ))}
          </Section>
          <Section title="Requests per action (rate, errors, mean duration; last minutes)">
            <Filter label="Find an action" value={filter} onInput={setFilter} />
            {red.data && red.data.length === 0 && (
              <p class="muted">
                No figures yet: the dashboard reads each node's /metrics every few seconds and draws a line once it has
                two readings of an action that was called.
              </p>
            )}
            <table class="red">
              <thead>
                <tr>
                  <th scope="col">Action</th>
                  <th scope="col">Node</th>
                  <th scope="col">Rate (req/s)</th>
                  <th scope="col">Errors (/s)</th>
                  <th scope="col">Mean duration</th>
                </tr>
              </thead>
              <tbody>
                {(red.data ?? [])
                  .filter((s) => matches(filter, s.action, s.nodeId))
                  .map((s) => {
                    const last = s.points.at(-1);
                    const means = s.points.map((p) => p.meanMs).filter((m): m is number => m !== null);
                    return (
                      <tr key={`${s.nodeId} ${s.action}`}>
                        <td>
                          <code>{s.action}</code>
                        </td>
                        <td>{s.nodeId}</td>
                        <td>
                          <Sparkline values={s.points.map((p) => p.rate)} label={`${s.action} requests per second`} />{' '}
                          {last?.rate.toFixed(2)}
                        </td>
                        <td>
                          <Sparkline
                            values={s.points.map((p) => p.errors)}
                            tone="errors"
                            label={`${s.action} errors per second`}
                          />{' '}
                          {last?.errors.toFixed(2)}
                        </td>
                        <td>
                          <Sparkline values={means} tone="duration" label={`${s.action} mean duration`} />{' '}
                          {means.length ? `${means.at(-1)!.toFixed(1)} ms` : '–'}
                        </td>
                      </tr>
                    );
                  })}
              </tbody>
            </table>
          </Section>
          <div class="columns">
            <Section title="Readiness checks">
              {data.health.map((h) => (
                <div key={h.nodeId}>
                  <h3>
                    {h.nodeId} <span class={`tag ${h.ready.status}`}>{h.ready.status}</span>
                  </h3>
                  <ul class="checks">
                    {Object.entries(h.ready.checks ?? {}).map(([name, checks]) => (
                      <li key={name} class={checks.some((c) => c.status !== 'pass') ? 'failed' : undefined}>
                        <span class={`tag ${checks.find((c) => c.status !== 'pass')?.status ?? 'pass'}`}>
                          {checks.find((c) => c.status !== 'pass')?.status ?? 'pass'}
                        </span>{' '}
                        {name}
                        {checks.map((c) => c.output).filter(Boolean).length > 0 && (
                          <span class="muted">
                            {' '}
                            —{' '}
                            {checks
                              .map((c) => c.output)
                              .filter(Boolean)
                              .join('; ')}
                          </span>
                        )}
                      </li>
                    ))}
                  </ul>
                </div>
              ))}
            </Section>
            <Section title="Breakers and bulkheads">
              <Policies policies={data.policies} />
            </Section>
          </div>
        </>
      )}
    </div>
  );
}

/** Breakers and bulkheads of every node: the ones that need a look in full, the rest counted (one per action adds up). */
function Policies({ policies }: { policies: Policies[] }) {
  const breakers = policies.flatMap((p) => p.breakers.map((b) => ({ ...b, nodeId: p.nodeId })));
  const bulkheads = policies.flatMap((p) => p.bulkheads.map((b) => ({ ...b, nodeId: p.nodeId })));
  const states = new Map<string, number>();
  for (const b of breakers) states.set(b.state, (states.get(b.state) ?? 0) + 1);
  const notClosed = breakers.filter((b) => b.state !== 'closed');
  const busy = bulkheads.filter((b) => b.inFlight > 0 || b.queued > 0);
  const breakerRows = (list: typeof breakers) =>
    list.map((b) => (
      <tr key={`${b.nodeId} ${b.target}`}>
        <td>{b.target}</td>
        <td>
          <span class={`tag ${b.state}`}>{b.state}</span>
        </td>
        <td class="muted">{b.nodeId}</td>
      </tr>
    ));
  const bulkheadRows = (list: typeof bulkheads) =>
    list.map((b) => (
      <tr key={`${b.nodeId} ${b.target}`}>
        <td>{b.target}</td>
        <td>
          {b.inFlight}/{b.maxConcurrent} in flight, {b.queued} queued
        </td>
        <td class="muted">{b.nodeId}</td>
      </tr>
    ));
  return (
    <>
      <p>
        {breakers.length} breakers:{' '}
        {[...states.entries()].map(([state, count]) => `${count} ${state}`).join(', ') || 'none'} · {bulkheads.length}{' '}
        bulkheads, {busy.length} busy
      </p>
      {notClosed.length + busy.length > 0 && (
        <table class="policies" aria-label="Breakers not closed and busy bulkheads">
          <tbody>
            {breakerRows(notClosed)}
            {bulkheadRows(busy)}
          </tbody>
        </table>
      )}
      <details>
        <summary>Every breaker and bulkhead</summary>
        <table class="policies">
          <tbody>
            {breakerRows(breakers)}
            {bulkheadRows(bulkheads)}
          </tbody>
        </table>
      </details>
    </>
  );
}
