import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, type Status } from './api.ts';
import './style.css';
import { useLoad } from './ui.tsx';
import { Catalog } from './views/catalog.tsx';
import { Explorer } from './views/explorer.tsx';
import { HealthView } from './views/health.tsx';
import { Queues } from './views/queues.tsx';
import { Sagas } from './views/sagas.tsx';
import { Topology } from './views/topology.tsx';
import { Traces } from './views/traces.tsx';

const VIEWS = [
  ['catalog', 'Catalog'],
  ['explorer', 'API explorer'],
  ['topology', 'Topology'],
  ['traces', 'Traces'],
  ['sagas', 'Sagas'],
  ['queues', 'Queues'],
  ['health', 'Health'],
] as const;

/** The route in the hash: `#/view/rest?query`, so every view and selection can be linked and bookmarked. */
function parseRoute(hash: string): { view: string; rest: string | undefined; params: URLSearchParams } {
  const [path = '', query = ''] = hash.replace(/^#\/?/, '').split('?');
  const [view = 'catalog', ...rest] = path.split('/');
  return {
    view: view || 'catalog',
    rest: rest.length ? decodeURIComponent(rest.join('/')) : undefined,
    params: new URLSearchParams(query),
  };
}

function useRoute() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return parseRoute(hash);
}

function StatusBar({ status, error }: { status: Status | undefined; error: { message: string } | undefined }) {
  if (error) {
    return (
      <div class="banner down" role="alert">
        <strong>The dashboard server does not answer.</strong> {error.message}
      </div>
    );
  }
  if (!status) return null;
  if (!status.reachable) {
    return (
      <div class="banner down" role="alert">
        <strong>The system is not reachable</strong> at {status.target} (
        {status.kind === 'broker' ? 'broker' : 'ops port'}): {status.error?.message} The dashboard keeps trying every
        few seconds.
      </div>
    );
  }
  return (
    <div class="banner up" role="status">
      Connected to {status.target} · {status.nodeIds?.length ?? 0} node{status.nodeIds?.length === 1 ? '' : 's'}
    </div>
  );
}

function App() {
  const route = useRoute();
  const status = useLoad(api.status, [], 4_000);
  const reachable = status.data?.reachable !== false;
  let view = null;
  if (reachable) {
    switch (route.view) {
      case 'explorer':
        view = <Explorer params={route.params} />;
        break;
      case 'topology':
        view = <Topology />;
        break;
      case 'traces':
        view = <Traces traceId={route.rest} />;
        break;
      case 'sagas':
        view = <Sagas selected={route.rest} />;
        break;
      case 'queues':
        view = <Queues selected={route.rest} />;
        break;
      case 'health':
        view = <HealthView />;
        break;
      default:
        view = <Catalog selected={route.rest} />;
    }
  }
  return (
    <>
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to the content
      </button>
      <header class="top">
        <span class="brand">Chassis</span>
        <nav aria-label="Views">
          {VIEWS.map(([id, title]) => (
            <a
              key={id}
              href={`#/${id}`}
              aria-current={
                route.view === id || (id === 'catalog' && !VIEWS.some(([v]) => v === route.view)) ? 'page' : undefined
              }
            >
              {title}
            </a>
          ))}
        </nav>
      </header>
      <StatusBar status={status.data} error={status.error} />
      <main id="main" tabIndex={-1}>
        {view}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
