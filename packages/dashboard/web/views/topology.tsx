import type { Core, ElementDefinition, NodeSingular } from 'cytoscape';
import type { ELK } from 'elkjs/lib/elk.bundled.js';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { type CatalogService, loadServices } from '../data.ts';
import { ErrorNote, Filter, matches, Section, useFocusHeading, useLoad } from '../ui.tsx';

interface Link {
  from: string;
  to: string;
  kind: 'call' | 'publish' | 'consume';
  label: string;
}

/** Who calls whom (actions) and who publishes and consumes which topic, from every node's `services`. */
function linksOf(services: CatalogService[]): { links: Link[]; topics: string[] } {
  const links: Link[] = [];
  const topics = new Set<string>();
  for (const s of services) {
    const byTarget = new Map<string, string[]>();
    for (const action of s.calls) {
      const target = action.split('.')[0]!;
      byTarget.set(target, [...(byTarget.get(target) ?? []), action.slice(target.length + 1)]);
    }
    for (const [target, names] of byTarget)
      links.push({ from: s.name, to: target, kind: 'call', label: names.join(', ') });
    for (const e of s.emits) {
      topics.add(e.name);
      links.push({ from: s.name, to: e.name, kind: 'publish', label: 'publishes' });
    }
    for (const e of s.events) {
      topics.add(e.name);
      links.push({ from: e.name, to: s.name, kind: 'consume', label: `consumes as ${e.subscription ?? s.name}` });
    }
  }
  return { links, topics: [...topics].sort() };
}

export function Topology() {
  const heading = useFocusHeading('topology');
  const services = useLoad(loadServices, [], 5_000);
  const [filter, setFilter] = useState('');
  const graph = useMemo(() => (services.data ? linksOf(services.data) : undefined), [services.data]);
  const nodes = useMemo(() => {
    const byNode = new Map<string, string[]>();
    for (const s of services.data ?? []) for (const n of s.nodes) byNode.set(n, [...(byNode.get(n) ?? []), s.name]);
    return [...byNode.entries()].sort();
  }, [services.data]);
  return (
    <div class="view">
      <h1 ref={heading} tabIndex={-1}>
        Topology
      </h1>
      {services.error && <ErrorNote error={services.error} what="Reading the services" />}
      <ul class="legend" aria-label="Legend">
        <li class="key key-service">service ×instances</li>
        <li class="key key-topic">event topic</li>
        <li class="key key-call">calls an action</li>
        <li class="key key-publish">publishes</li>
        <li class="key key-consume">consumes</li>
      </ul>
      {services.data && graph && (
        <Graph services={services.data} links={graph.links} topics={graph.topics} focus={filter} />
      )}
      <div class="columns">
        <Section title={`Nodes (${nodes.length})`}>
          <table>
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">Services</th>
              </tr>
            </thead>
            <tbody>
              {nodes.map(([node, names]) => (
                <tr key={node}>
                  <td>
                    <code>{node}</code>
                  </td>
                  <td>
                    {names.length}: {names.join(', ')}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </Section>
        <Section title="Connections">
          <Filter label="Find a service or topic" value={filter} onInput={setFilter} />
          <ul class="links">
            {graph?.links
              .filter((l) => matches(filter, l.from, l.to, l.label))
              .map((l) => (
                <li key={`${l.kind} ${l.from} ${l.to}`} class={l.kind}>
                  <code>{l.from}</code>{' '}
                  {l.kind === 'call' ? `calls ${l.label} of` : l.kind === 'publish' ? 'publishes' : '→'}{' '}
                  <code>{l.to}</code>
                  {l.kind === 'consume' && <span class="muted"> ({l.label})</span>}
                </li>
              ))}
          </ul>
        </Section>
      </div>
    </div>
  );
}

/** The graph; `focus` (the search box's text) fades what does not match and zooms to the matches and their neighbours. */
function Graph({
  services,
  links,
  topics,
  focus,
}: {
  services: CatalogService[];
  links: Link[];
  topics: string[];
  focus: string;
}) {
  const container = useRef<HTMLDivElement>(null);
  const cy = useRef<Core | undefined>(undefined);
  const [drawn, setDrawn] = useState(0);
  const elements = useMemo<ElementDefinition[]>(
    () => [
      ...services.map((s) => ({
        data: { id: s.name, label: `${s.name} ×${s.nodes.length}` },
        classes: 'service',
      })),
      ...topics.map((t) => ({ data: { id: t, label: t }, classes: 'topic' })),
      ...links
        .filter((l) => l.kind !== 'call' || services.some((s) => s.name === l.to))
        .map((l) => ({
          data: {
            id: `${l.kind}:${l.from}->${l.to}`,
            source: l.from,
            target: l.to,
            label: l.kind === 'call' ? l.label : '',
          },
          classes: l.kind,
        })),
    ],
    [services, links, topics],
  );
  // The graph is drawn again only when what it shows changed, not at every refresh.
  const shape = JSON.stringify(elements);
  useEffect(() => {
    let live = true;
    // The graph libraries (most of the page's weight) load when the Topology view first draws.
    void Promise.all([import('cytoscape'), positionsOf(elements)]).then(([{ default: cytoscape }, positions]) => {
      if (!live || !container.current) return;
      cy.current?.destroy();
      cy.current = cytoscape({
        container: container.current,
        elements,
        minZoom: 0.2,
        maxZoom: 2.5,
        style: [
          {
            selector: 'node.service',
            style: {
              shape: 'round-rectangle',
              'background-color': '#dbeafe',
              'border-color': '#1d4ed8',
              'border-width': 1.5,
              label: 'data(label)',
              'text-valign': 'center',
              'font-size': 13,
              width: (n: NodeSingular) => 8 * String(n.data('label')).length + 16,
              height: 26,
            },
          },
          {
            selector: 'node.topic',
            style: {
              shape: 'diamond',
              'background-color': '#fef3c7',
              'border-color': '#b45309',
              'border-width': 1,
              width: 14,
              height: 14,
              label: 'data(label)',
              'font-size': 10,
              color: '#78350f',
              'text-valign': 'bottom',
              'text-margin-y': 3,
            },
          },
          {
            selector: 'edge',
            style: { width: 1.5, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', 'arrow-scale': 0.9 },
          },
          {
            selector: 'edge.call',
            style: {
              'line-color': '#1d4ed8',
              'target-arrow-color': '#1d4ed8',
              label: 'data(label)',
              'font-size': 8,
              'text-rotation': 'autorotate',
              color: '#1e3a8a',
            },
          },
          {
            selector: 'edge.publish',
            style: { 'line-color': '#b45309', 'target-arrow-color': '#b45309', 'line-style': 'dashed' },
          },
          {
            selector: 'edge.consume',
            style: { 'line-color': '#15803d', 'target-arrow-color': '#15803d', 'line-style': 'dotted' },
          },
          { selector: '.faded', style: { opacity: 0.12 } },
        ],
        layout: { name: 'preset', positions: Object.fromEntries(positions), fit: true, padding: 16 },
      });
      setDrawn((n) => n + 1);
    });
    return () => {
      live = false;
      cy.current?.destroy();
      cy.current = undefined;
    };
  }, [shape]);
  useEffect(() => {
    const graph = cy.current;
    if (!graph || drawn === 0) return;
    graph.elements().removeClass('faded');
    const words = focus.trim();
    if (!words) {
      graph.fit(undefined, 16);
      return;
    }
    const matched = graph.nodes().filter((node) => matches(words, node.id()));
    if (matched.length === 0) return;
    const near = matched.closedNeighborhood();
    graph.elements().not(near).addClass('faded');
    graph.fit(near, 24);
    // A few services fill the box at a size nobody needs: kept at a readable scale, centred.
    if (graph.zoom() > 1.3) {
      graph.zoom(1.3);
      graph.center(near);
    }
  }, [focus, drawn]);
  return (
    <div
      class="graph"
      ref={container}
      role="img"
      aria-label={`Graph of ${services.length} services and ${topics.length} event topics; the lists below say the same in text`}
    />
  );
}

let elk: Promise<ELK> | undefined;

/** Node width for a label: ELK needs sizes to lay out, cytoscape draws the same size. */
function widthOf(element: ElementDefinition): number {
  return element.classes === 'topic' ? 14 : 8 * String(element.data.label).length + 16;
}

/**
 * Positions from ELK's layered (Sugiyama) layout, left to right: callers before the services they call,
 * publishers before their topics, topics before their consumers — a flow that reads like the system
 * works, where a force layout tangles a few dozen nodes into a ball.
 */
async function positionsOf(elements: ElementDefinition[]): Promise<Map<string, { x: number; y: number }>> {
  const nodes = elements.filter((e) => e.data.source === undefined);
  const edges = elements.filter((e) => e.data.source !== undefined);
  elk ??= import('elkjs/lib/elk.bundled.js').then(({ default: ELK }) => new ELK());
  const laid = await (await elk).layout({
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'RIGHT',
      'elk.layered.spacing.nodeNodeBetweenLayers': '60',
      'elk.spacing.nodeNode': '14',
      'elk.layered.nodePlacement.strategy': 'BRANDES_KOEPF',
      // A long chain of services wraps into rows instead of one line too thin to read.
      'elk.layered.wrapping.strategy': 'MULTI_EDGE',
      'elk.aspectRatio': '2.8',
    },
    children: nodes.map((n) => ({ id: String(n.data.id), width: widthOf(n), height: n.classes === 'topic' ? 14 : 26 })),
    edges: edges.map((e) => ({
      id: String(e.data.id),
      sources: [String(e.data.source)],
      targets: [String(e.data.target)],
    })),
  });
  const positions = new Map<string, { x: number; y: number }>();
  for (const child of laid.children ?? []) {
    positions.set(child.id, {
      x: (child.x ?? 0) + (child.width ?? 0) / 2,
      y: (child.y ?? 0) + (child.height ?? 0) / 2,
    });
  }
  return positions;
}
