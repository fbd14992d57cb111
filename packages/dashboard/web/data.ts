import { answered, api } from './api.ts';
import type { JsonSchema } from './schema.ts';

export interface ActionInfo {
  name: string;
  service: string;
  idempotent: boolean;
  timeoutMs: number | null;
  description: string | null;
  input: JsonSchema;
  output: JsonSchema;
  policies: unknown;
}

export interface EventInfo {
  name: string;
  role: 'handles' | 'emits';
  service: string;
  subscription?: string;
  description: string | null;
  payload: JsonSchema;
}

export interface ServiceInfo {
  name: string;
  version: string;
  description: string | null;
  nodeId: string;
  actions: ActionInfo[];
  events: EventInfo[];
  emits: EventInfo[];
  calls: string[];
  schedules: { name: string; everyMs?: number; scope?: string }[];
}

/** A service as the system runs it: what one node describes, and every node that runs it. */
export interface CatalogService extends ServiceInfo {
  nodes: string[];
}

/** Every node's services, one entry per service with the nodes that run it, by name. */
export async function loadServices(): Promise<CatalogService[]> {
  const byName = new Map<string, CatalogService>();
  for (const { nodeId, output } of answered(await api.each<ServiceInfo[]>('services'))) {
    for (const service of output) {
      const known = byName.get(service.name);
      if (known) known.nodes.push(nodeId);
      else byName.set(service.name, { ...service, nodes: [nodeId] });
    }
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}
