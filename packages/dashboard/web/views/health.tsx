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
              <table class="policies">
                <thead>
                  <tr>
                    <th scope="col">Node</th>
                    <th scope="col">Target</th>
                    <th scope="col">State</th>
                  </tr>
                </thead>
                <tbody>
                  {data.policies.flatMap((p) => [
                    ...p.breakers.map((b) => (
                      <tr key={`${p.nodeId} b ${b.target}`}>
                        <td>{p.nodeId}</td>
                        <td>breaker {b.target}</td>
                        <td>
                          <span class={`tag ${b.state}`}>{b.state}</span>
                        </td>
                      </tr>
                    )),
                    ...p.bulkheads.map((b) => (
                      <tr key={`${p.nodeId} h ${b.target}`}>
                        <td>{p.nodeId}</td>
                        <td>bulkhead {b.target}</td>
                        <td>
                          {b.inFlight}/{b.maxConcurrent} in flight, {b.queued} queued
                        </td>
                      </tr>
                    )),
                  ])}
                </tbody>
              </table>
              {data.policies.every((p) => p.breakers.length + p.bulkheads.length === 0) && (
                <p class="muted">No breaker or bulkhead configured.</p>
              )}
            </Section>
          </div>
        </>
      )}
      <Section title="Requests per action (rate, errors, mean duration; last minutes)">
        <Filter label="Find an action" value={filter} onInput={setFilter} />
        {red.data && red.data.length === 0 && (
          <p class="muted">
            No figures yet: the dashboard reads each node's /metrics every few seconds and draws a line once it has two
            readings of an action that was called.
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
                      <Sparkline
                        values={s.points.map((p) => p.meanMs)}
                        tone="duration"
                        label={`${s.action} mean duration`}
                      />{' '}
                      {means.length ? `${means.at(-1)!.toFixed(1)} ms` : '–'}
                    </td>
                  </tr>
                );
              })}
          </tbody>
        </table>
      </Section>
    </div>
  );
}
