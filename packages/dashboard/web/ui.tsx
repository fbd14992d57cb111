import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { OpsError } from './api.ts';

export interface Loaded<T> {
  data: T | undefined;
  error: OpsError | undefined;
  loading: boolean;
  reload: () => void;
}

/** Loads `load()` now, when `deps` change, and every `everyMs` (a live view); keeps the last data on a failed refresh. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], everyMs?: number): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<OpsError>();
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load()
      .then((value) => {
        if (!live) return;
        setData(value);
        setError(undefined);
      })
      .catch((failure: unknown) => {
        if (!live) return;
        setError(failure instanceof OpsError ? failure : new OpsError({ code: 'INTERNAL', message: String(failure) }));
      })
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  useEffect(() => {
    if (!everyMs) return;
    const timer = setInterval(reload, everyMs);
    return () => clearInterval(timer);
  }, [everyMs, reload]);
  return { data, error, loading, reload };
}

/** What an error means to the person looking, with its code. */
export function ErrorNote({ error, what }: { error: OpsError; what?: string }) {
  const unreachable = ['UNAVAILABLE', 'NO_SERVICE', 'TIMEOUT', 'TRANSPORT'].includes(error.code);
  return (
    <div class="error" role="alert">
      <strong>
        {unreachable ? 'The system does not answer' : what ? `${what} failed` : 'Failed'} ({error.code})
      </strong>
      <p>{error.message}</p>
      {error.code === 'UNAUTHENTICATED' && (
        <p>Start the dashboard with the system's ops secret: CHASSIS_OPS_SECRET=… or --secret (or an admin --token).</p>
      )}
    </div>
  );
}

export function Json({ value, label }: { value: unknown; label?: string }) {
  // A region that scrolls must take focus, or a keyboard cannot scroll it.
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region is reached by Tab to be scrolled by keys
    <section class="json" aria-label={label ?? 'JSON'} tabIndex={0}>
      <pre>{JSON.stringify(value, null, 2)}</pre>
    </section>
  );
}

/** A search box; lists filter on every key stroke so 50 services stay findable. */
export function Filter({ value, onInput, label }: { value: string; onInput: (value: string) => void; label: string }) {
  return (
    <label class="filter">
      <span>{label}</span>
      <input type="search" value={value} onInput={(e) => onInput((e.target as HTMLInputElement).value)} />
    </label>
  );
}

export function matches(filter: string, ...texts: (string | null | undefined)[]): boolean {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  const haystack = texts.filter(Boolean).join(' ').toLowerCase();
  return words.every((word) => haystack.includes(word));
}

export function Section({
  title,
  children,
  actions,
}: {
  title: string;
  children: ComponentChildren;
  actions?: ComponentChildren;
}) {
  return (
    <section class="panel">
      <header>
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

/** A small line of the last values (SVG): rate, errors or duration over the last minutes. */
export function Sparkline({
  values,
  label,
  width = 120,
  height = 24,
  tone = 'rate',
}: {
  values: (number | null)[];
  label: string;
  width?: number;
  height?: number;
  tone?: 'rate' | 'errors' | 'duration';
}) {
  const numbers = values.map((v) => v ?? 0);
  const max = Math.max(...numbers, 1e-9);
  const step = numbers.length > 1 ? width / (numbers.length - 1) : width;
  const points = numbers.map(
    (v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`,
  );
  return (
    <svg class={`spark ${tone}`} width={width} height={height} role="img" aria-label={label}>
      <title>{label}</title>
      {numbers.length > 0 && <polyline points={points.join(' ')} fill="none" stroke-width="1.5" />}
    </svg>
  );
}

/** Focus moves to a view's heading when the view changes, so a keyboard user starts at the top of it. */
export function useFocusHeading(key: string) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), [key]);
  return ref;
}

export function timeOf(value: string | number | undefined | null): string {
  if (value === undefined || value === null) return '';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleTimeString();
}
