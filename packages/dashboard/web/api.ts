/** The page's only way to the system: the dashboard server's /api, which adds the ops credentials. */

export interface OpsErrorBody {
  code: string;
  message: string;
  details?: unknown;
}

/** An error the ops API (or the dashboard server) answered, with its stable code. */
export class OpsError extends Error {
  readonly code: string;
  readonly details: unknown;
  constructor(body: OpsErrorBody) {
    super(body.message);
    this.code = body.code;
    this.details = body.details;
  }
}

export interface NodeAnswer<T> {
  nodeId: string;
  output?: T;
  error?: OpsErrorBody;
}

export interface Status {
  target: string;
  kind: 'broker' | 'http';
  reachable: boolean;
  nodeIds?: string[];
  error?: OpsErrorBody;
}

async function request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`api/${path}`, {
      method,
      headers: { 'x-chassis-dashboard': '1', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    throw new OpsError({
      code: 'UNAVAILABLE',
      message: 'The dashboard server does not answer: is chassis dashboard still running?',
    });
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch {
    throw new OpsError({
      code: 'BAD_MESSAGE',
      message: `The dashboard server answered ${response.status} with no JSON`,
    });
  }
  if (!response.ok) {
    const error = (parsed as { error?: OpsErrorBody } | null)?.error;
    throw new OpsError(error ?? { code: 'INTERNAL', message: `The dashboard server answered ${response.status}` });
  }
  return parsed as T;
}

export const api = {
  status: () => request<Status>('GET', 'status'),
  /** One ops action on one node: `nodeId`, else the first that runs `service`, else the first. */
  ops: <T>(
    action: string,
    input: unknown = {},
    target: { nodeId?: string; service?: string; timeoutMs?: number } = {},
  ) => request<T>('POST', `ops/${action.replaceAll('.', '/')}`, { input, ...target }),
  /** One ops action on every node, each answer or error. */
  each: <T>(action: string, input: unknown = {}) =>
    request<NodeAnswer<T>[]>('POST', `each/${action.replaceAll('.', '/')}`, { input }),
  red: () => request<RedSeries[]>('GET', 'red'),
};

export interface RedSeries {
  action: string;
  nodeId: string;
  points: { at: number; rate: number; errors: number; meanMs: number | null }[];
}

/** The outputs of the nodes that answered, each with its node; throws when none did and all failed alike. */
export function answered<T>(answers: NodeAnswer<T>[]): { nodeId: string; output: T }[] {
  const ok = answers.filter((a): a is { nodeId: string; output: T } => a.error === undefined);
  if (ok.length === 0 && answers.length > 0) throw new OpsError(answers[0]!.error!);
  return ok;
}

/** W3C trace context for a call made from the explorer: a fresh trace, sampled. */
export function newTraceparent(): { traceparent: string; traceId: string } {
  const hex = (bytes: number) =>
    Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
  const traceId = hex(16);
  return { traceId, traceparent: `00-${traceId}-${hex(8)}-01` };
}
