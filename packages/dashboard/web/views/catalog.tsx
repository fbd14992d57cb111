import { useState } from 'preact/hooks';
import { type CatalogService, loadServices } from '../data.ts';
import { ErrorNote, Filter, Json, matches, useFocusHeading, useLoad } from '../ui.tsx';

export function Catalog({ selected }: { selected?: string }) {
  const heading = useFocusHeading('catalog');
  const services = useLoad(loadServices, [], 10_000);
  const [filter, setFilter] = useState('');
  const list = (services.data ?? []).filter((s) =>
    matches(filter, s.name, s.description, ...s.actions.map((a) => a.name), ...s.events.map((e) => e.name)),
  );
  const current = services.data?.find((s) => s.name === selected) ?? list[0];
  return (
    <div class="view">
      <h1 ref={heading} tabIndex={-1}>
        Catalog
        {services.data && <span class="count"> · {services.data.length} services</span>}
      </h1>
      {services.error && <ErrorNote error={services.error} what="Listing the services" />}
      <div class="split">
        <nav class="side" aria-label="Services">
          <Filter label="Find a service, action or event" value={filter} onInput={setFilter} />
          <ul class="service-list">
            {list.map((s) => (
              <li key={s.name}>
                <a href={`#/catalog/${s.name}`} aria-current={s.name === current?.name ? 'true' : undefined}>
                  <span class="name">{s.name}</span>
                  <span class="meta">
                    {s.actions.length} actions · {s.events.length + s.emits.length} events · {s.nodes.length} node
                    {s.nodes.length === 1 ? '' : 's'}
                  </span>
                </a>
              </li>
            ))}
          </ul>
          {services.data && list.length === 0 && <p class="muted">No service matches “{filter}”.</p>}
        </nav>
        <div class="main">{current && <ServiceDetail service={current} />}</div>
      </div>
    </div>
  );
}

function ServiceDetail({ service }: { service: CatalogService }) {
  return (
    <article class="service" aria-label={`Service ${service.name}`}>
      <h2>
        {service.name} <span class="muted">v{service.version}</span>
      </h2>
      {service.description && <p>{service.description}</p>}
      <p>
        Served by <strong>{service.nodes.join(', ')}</strong>
        {service.calls.length > 0 && <> · calls {service.calls.join(', ')}</>}
        {service.schedules.length > 0 && <> · schedules {service.schedules.map((s) => s.name).join(', ')}</>}
      </p>
      <h3>Actions</h3>
      {service.actions.length === 0 && <p class="muted">None: it works on events only.</p>}
      {service.actions.map((action) => (
        <details key={action.name} class="contract">
          <summary>
            <code>{action.name}</code>
            {action.idempotent && <span class="tag">idempotent</span>}
            <span class="muted"> {action.description}</span>
          </summary>
          <p>
            <a href={`#/explorer?action=${encodeURIComponent(action.name)}`}>Try it in the explorer</a>
            {action.timeoutMs !== null && <> · timeout {action.timeoutMs} ms</>}
          </p>
          <div class="schemas">
            <div>
              <h4>Input</h4>
              <Json value={action.input} label={`${action.name} input schema`} />
            </div>
            <div>
              <h4>Output</h4>
              <Json value={action.output} label={`${action.name} output schema`} />
            </div>
          </div>
        </details>
      ))}
      <h3>Events</h3>
      {service.events.length + service.emits.length === 0 && <p class="muted">It neither handles nor emits events.</p>}
      {[...service.emits, ...service.events].map((event) => (
        <details key={`${event.role} ${event.subscription ?? event.name}`} class="contract">
          <summary>
            <span class={`tag ${event.role}`}>{event.role}</span> <code>{event.name}</code>
            {event.subscription && <span class="muted"> as {event.subscription}</span>}
            {event.description && <span class="muted"> {event.description}</span>}
          </summary>
          <p>
            <a href={`#/explorer?event=${encodeURIComponent(event.name)}`}>Emit it from the explorer</a>
          </p>
          <Json value={event.payload} label={`${event.name} payload schema`} />
        </details>
      ))}
    </article>
  );
}
