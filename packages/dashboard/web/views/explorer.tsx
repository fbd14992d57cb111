import { useMemo, useState } from 'preact/hooks';
import { api, newTraceparent, OpsError } from '../api.ts';
import { type CatalogService, loadServices } from '../data.ts';
import { exampleOf } from '../schema.ts';
import { ErrorNote, Filter, Json, matches, Section, useFocusHeading, useLoad } from '../ui.tsx';

type Outcome =
  | { kind: 'answer'; value: unknown; ms: number; traceId?: string }
  | { kind: 'error'; error: OpsError; traceId?: string }
  | { kind: 'invalid-json'; message: string };

interface FieldError {
  path: string;
  message: string;
  code?: string;
}

const TOKEN_KEY = 'chassis-dashboard-token';

/** Parses the editor's text; the message says where JSON.parse stopped. */
function parseEditor(text: string): { value: unknown } | { message: string } {
  if (text.trim() === '') return { value: {} };
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return { message: `The input is not valid JSON: ${(error as Error).message}. Fix it and call again.` };
  }
}

export function Explorer({ params }: { params: URLSearchParams }) {
  const heading = useFocusHeading('explorer');
  const services = useLoad(loadServices, []);
  const [token, setTokenState] = useState(() => sessionStorage.getItem(TOKEN_KEY) ?? '');
  const setToken = (value: string) => {
    sessionStorage.setItem(TOKEN_KEY, value);
    setTokenState(value);
  };
  return (
    <div class="view">
      <h1 ref={heading} tabIndex={-1}>
        API explorer
      </h1>
      {services.error && <ErrorNote error={services.error} what="Listing the actions" />}
      <div class="field token">
        <label for="explorer-token">Caller's token (what the action sees as the user; not the ops secret)</label>
        <input
          id="explorer-token"
          type="text"
          name="token"
          spellcheck={false}
          autocomplete="off"
          placeholder="eyJ… — call identity.issueToken, then “Use this token”"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
        />
      </div>
      {services.data && (
        <div class="columns">
          <CallAction
            services={services.data}
            initial={params.get('action') ?? undefined}
            token={token}
            setToken={setToken}
          />
          <EmitEvent services={services.data} initial={params.get('event') ?? undefined} />
        </div>
      )}
    </div>
  );
}

function CallAction({
  services,
  initial,
  token,
  setToken,
}: {
  services: CatalogService[];
  initial?: string;
  token: string;
  setToken: (token: string) => void;
}) {
  const actions = useMemo(
    () => services.flatMap((s) => s.actions).sort((a, b) => a.name.localeCompare(b.name)),
    [services],
  );
  const [filter, setFilter] = useState('');
  const [name, setName] = useState(initial ?? actions[0]?.name ?? '');
  const action = actions.find((a) => a.name === name);
  const [text, setText] = useState(() => JSON.stringify(exampleOf(action?.input), null, 2));
  const [outcome, setOutcome] = useState<Outcome>();
  const [busy, setBusy] = useState(false);
  const shown = actions.filter((a) => a.name === name || matches(filter, a.name, a.description));

  const pick = (next: string) => {
    setName(next);
    setText(JSON.stringify(exampleOf(actions.find((a) => a.name === next)?.input), null, 2));
    setOutcome(undefined);
  };

  async function call(event: Event) {
    event.preventDefault();
    const parsed = parseEditor(text);
    if ('message' in parsed) {
      setOutcome({ kind: 'invalid-json', message: parsed.message });
      return;
    }
    const { traceparent, traceId } = newTraceparent();
    setBusy(true);
    const started = performance.now();
    try {
      const value = await api.ops(
        'call',
        { action: name, input: parsed.value, traceparent, ...(token.trim() ? { token: token.trim() } : {}) },
        { service: action?.service ?? name.split('.')[0], timeoutMs: 32_000 },
      );
      setOutcome({ kind: 'answer', value, ms: Math.round(performance.now() - started), traceId });
    } catch (error) {
      setOutcome({
        kind: 'error',
        error: error instanceof OpsError ? error : new OpsError({ code: 'INTERNAL', message: String(error) }),
        traceId,
      });
    } finally {
      setBusy(false);
    }
  }

  const issued =
    outcome?.kind === 'answer' ? (outcome.value as { access_token?: unknown } | null)?.access_token : undefined;
  return (
    <Section title="Call an action">
      <form onSubmit={call} aria-label="Call an action">
        <Filter label="Find an action" value={filter} onInput={setFilter} />
        <div class="field">
          <label for="explorer-action">Action</label>
          <select
            id="explorer-action"
            name="action"
            value={name}
            onChange={(e) => pick((e.target as HTMLSelectElement).value)}
          >
            {shown.map((a) => (
              <option key={a.name} value={a.name}>
                {a.name}
              </option>
            ))}
          </select>
        </div>
        {action?.description && <p class="muted">{action.description}</p>}
        <div class="field">
          <label for="explorer-input">Input (JSON, pre-filled from the contract)</label>
          <textarea
            id="explorer-input"
            name="input"
            rows={10}
            spellcheck={false}
            value={text}
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          />
        </div>
        <div class="buttons">
          <button type="submit" disabled={busy}>
            {busy ? 'Calling…' : 'Call'}
          </button>
          <button type="button" class="secondary" onClick={() => pick(name)}>
            Reset the input
          </button>
        </div>
      </form>
      <Result outcome={outcome} />
      {typeof issued === 'string' && (
        <button type="button" class="secondary" onClick={() => setToken(issued)}>
          Use this token for the next calls
        </button>
      )}
    </Section>
  );
}

function EmitEvent({ services, initial }: { services: CatalogService[]; initial?: string }) {
  const events = useMemo(() => {
    const byName = new Map<string, { name: string; payload: unknown; service: string }>();
    for (const s of services) for (const e of [...s.emits, ...s.events]) if (!byName.has(e.name)) byName.set(e.name, e);
    return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }, [services]);
  const [name, setName] = useState(initial ?? events[0]?.name ?? '');
  const event = events.find((e) => e.name === name);
  const [text, setText] = useState(() => JSON.stringify(exampleOf(event?.payload as never), null, 2));
  const [outcome, setOutcome] = useState<Outcome>();
  const pick = (next: string) => {
    setName(next);
    setText(JSON.stringify(exampleOf(events.find((e) => e.name === next)?.payload as never), null, 2));
    setOutcome(undefined);
  };
  async function emit(submitted: Event) {
    submitted.preventDefault();
    const parsed = parseEditor(text);
    if ('message' in parsed) return setOutcome({ kind: 'invalid-json', message: parsed.message });
    const started = performance.now();
    try {
      const value = await api.ops('emit', { event: name, payload: parsed.value }, { service: event?.service });
      setOutcome({ kind: 'answer', value, ms: Math.round(performance.now() - started) });
    } catch (error) {
      setOutcome({
        kind: 'error',
        error: error instanceof OpsError ? error : new OpsError({ code: 'INTERNAL', message: String(error) }),
      });
    }
  }
  return (
    <Section title="Emit an event">
      <form onSubmit={emit} aria-label="Emit an event">
        <div class="field">
          <label for="explorer-event">Event</label>
          <select
            id="explorer-event"
            name="event"
            value={name}
            onChange={(e) => pick((e.target as HTMLSelectElement).value)}
          >
            {events.map((e) => (
              <option key={e.name} value={e.name}>
                {e.name}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="explorer-payload">Payload (JSON)</label>
          <textarea
            id="explorer-payload"
            name="payload"
            rows={8}
            spellcheck={false}
            value={text}
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          />
        </div>
        <div class="buttons">
          <button type="submit">Emit</button>
        </div>
      </form>
      <Result outcome={outcome} />
    </Section>
  );
}

function Result({ outcome }: { outcome: Outcome | undefined }) {
  if (!outcome) return null;
  if (outcome.kind === 'invalid-json') {
    return (
      <div class="error result" role="alert">
        <strong>Not sent</strong>
        <p>{outcome.message}</p>
      </div>
    );
  }
  const traceLink = outcome.traceId && (
    <p>
      <a href={`#/traces/${outcome.traceId}`}>See its trace ({outcome.traceId.slice(0, 8)}…)</a>
    </p>
  );
  if (outcome.kind === 'error') {
    const fields = (outcome.error.details as { fields?: FieldError[] } | undefined)?.fields;
    return (
      <div class="result">
        <ErrorNote error={outcome.error} what="The call" />
        {outcome.error.code === 'VALIDATION' && Array.isArray(fields) && (
          <table class="fields" aria-label="Field errors">
            <thead>
              <tr>
                <th scope="col">Field</th>
                <th scope="col">Problem</th>
              </tr>
            </thead>
            <tbody>
              {fields.map((f) => (
                <tr key={`${f.path} ${f.message}`}>
                  <td>
                    <code>{f.path || '(the input)'}</code>
                  </td>
                  <td>{f.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {traceLink}
      </div>
    );
  }
  return (
    <div class="result ok" role="status">
      <strong>Answer in {outcome.ms} ms</strong>
      <Json value={outcome.value} label="Answer" />
      {traceLink}
    </div>
  );
}
