import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ChassisError, toChassisError } from '../errors.ts';
import { OPS_SECRET_HTTP_HEADER, type OpsAction, type OpsCredentials } from '../ops.ts';

/**
 * Health in the style of the health+json draft: an overall `status` (pass, warn, fail) and one entry
 * per check with its own status, how long it took, and what it saw.
 */
export type HealthStatus = 'pass' | 'warn' | 'fail';

export interface CheckResult {
  status: HealthStatus;
  /** What a person should know when it is not `pass`. */
  output?: string;
  observedValue?: unknown;
}

/** A check a service declares: resolves with its result, or throws (which counts as `fail`). */
export type HealthCheck = () => Promise<CheckResult> | CheckResult;

export interface HealthEntry extends CheckResult {
  componentId: string;
  durationMs: number;
  time: string;
}

export interface HealthReport {
  status: HealthStatus;
  description: string;
  checks: Record<string, HealthEntry[]>;
}

const rank: Record<HealthStatus, number> = { pass: 0, warn: 1, fail: 2 };

/** Runs checks at once, each bounded by `timeoutMs`; the report's status is the worst of them. */
export async function runChecks(
  description: string,
  checks: Record<string, HealthCheck>,
  timeoutMs = 2000,
): Promise<HealthReport> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]): Promise<[string, HealthEntry]> => {
      const started = performance.now();
      let result: CheckResult;
      let timer: NodeJS.Timeout | undefined;
      try {
        const outcome = await Promise.race([
          Promise.resolve().then(check),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        result = outcome;
      } catch (error) {
        result = { status: 'fail', output: error instanceof Error ? error.message : String(error) };
      } finally {
        clearTimeout(timer);
      }
      const entry: HealthEntry = {
        componentId: name,
        ...result,
        durationMs: Math.round((performance.now() - started) * 100) / 100,
        time: new Date().toISOString(),
      };
      return [name, entry];
    }),
  );
  const status = entries.reduce<HealthStatus>(
    (worst, [, entry]) => (rank[entry.status] > rank[worst] ? entry.status : worst),
    'pass',
  );
  return { status, description, checks: Object.fromEntries(entries.map(([name, entry]) => [name, [entry]])) };
}

export interface OpsEndpoints {
  live(): Promise<HealthReport>;
  ready(): Promise<HealthReport>;
  metrics(): Promise<string>;
  /** The ops API under `/ops/…`; without it those paths are 404. */
  ops?: {
    actions(): { name: string; action: OpsAction }[];
    /** Authorizes, validates and runs an action: its output, or a `ChassisError`. */
    run(name: string, input: unknown, credentials: OpsCredentials): Promise<unknown>;
  };
}

/** The largest JSON body `/ops/…` reads. */
const MAX_OPS_BODY_BYTES = 1024 * 1024;

interface Routed {
  status: number;
  type: string;
  body: string;
  headers?: Record<string, string>;
}

/**
 * `/ops/<action, its dots as slashes>`: `GET /ops/services`, `POST /ops/dlq/replay`. GET takes the input
 * from the query string (for actions that change nothing), POST from a JSON body. The credentials are an
 * `Authorization: Bearer <token>` or an `X-Chassis-Ops-Secret` header; errors are JSON with their code.
 */
async function routeOps(
  ops: NonNullable<OpsEndpoints['ops']>,
  request: IncomingMessage,
  path: string,
  query: string,
): Promise<Routed> {
  try {
    const credentials: OpsCredentials = {};
    const authorization = request.headers.authorization;
    if (authorization !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      if (!match) throw new ChassisError('UNAUTHENTICATED', 'The Authorization header must be "Bearer <token>"');
      credentials.token = match[1]!;
    }
    const secret = request.headers[OPS_SECRET_HTTP_HEADER];
    if (typeof secret === 'string') credentials.secret = secret;
    const name = path === '/ops' || path === '/ops/' ? 'api' : path.slice('/ops/'.length).replaceAll('/', '.');
    const action = ops.actions().find((entry) => entry.name === name)?.action;
    let input: unknown;
    if (request.method === 'GET') {
      if (action?.mutates) {
        throw new ChassisError('VALIDATION', `${name} changes things: send it as POST ${path} with a JSON body`, {
          status: 405,
        });
      }
      const fields: Record<string, string | string[]> = {};
      for (const [key, value] of new URLSearchParams(query)) {
        const before = fields[key];
        fields[key] = before === undefined ? value : [...(Array.isArray(before) ? before : [before]), value];
      }
      input = fields;
    } else if (request.method === 'POST') {
      input = await readJson(request);
    } else {
      throw new ChassisError('VALIDATION', `Use GET or POST on ${path}`, { status: 405 });
    }
    const output = await ops.run(name, input, credentials);
    return { status: 200, type: 'application/json', body: JSON.stringify(output) };
  } catch (error) {
    const failure = toChassisError(error);
    return {
      status: failure.status,
      type: 'application/json',
      body: JSON.stringify({
        error: {
          code: failure.code,
          message: failure.message,
          ...(failure.data === undefined ? {} : { details: failure.data }),
        },
      }),
      ...(failure.code === 'UNAUTHENTICATED' ? { headers: { 'www-authenticate': 'Bearer' } } : {}),
    };
  }
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_OPS_BODY_BYTES) {
      throw new ChassisError('VALIDATION', `The body is larger than ${MAX_OPS_BODY_BYTES} bytes`, { status: 413 });
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new ChassisError('BAD_MESSAGE', 'The body is not valid JSON');
  }
}

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The ops port: `/health/live`, `/health/ready` (503 unless `pass` or `warn`), `/metrics`, and the ops
 * API under `/ops/…`. Plain node:http: a handful of routes need no framework, and the port must answer
 * even when the node's own HTTP edge is busy or not there.
 */
export async function startOpsServer(port: number, endpoints: OpsEndpoints, host = '0.0.0.0'): Promise<OpsServer> {
  const health = async (report: Promise<HealthReport>) => {
    const body = await report;
    return { status: body.status === 'fail' ? 503 : 200, type: 'application/health+json', body: JSON.stringify(body) };
  };
  const server: Server = createServer((request, response) => {
    const [path = '/', query = ''] = (request.url ?? '/').split('?');
    const { ops } = endpoints;
    const route: (() => Promise<Routed>) | undefined =
      ops && (path === '/ops' || path.startsWith('/ops/'))
        ? () => routeOps(ops, request, path, query)
        : request.method !== 'GET'
          ? undefined
          : path === '/health/live'
            ? () => health(endpoints.live())
            : path === '/health/ready'
              ? () => health(endpoints.ready())
              : path === '/metrics'
                ? async () => ({ status: 200, type: 'text/plain; version=0.0.4', body: await endpoints.metrics() })
                : undefined;
    if (!route) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          error: {
            code: 'NOT_FOUND',
            message: `Try /health/live, /health/ready, /metrics${endpoints.ops ? ' or /ops' : ''}`,
          },
        }),
      );
      return;
    }
    route().then(
      ({ status, type, body, headers }) => {
        response.writeHead(status, { ...headers, 'content-type': type, 'cache-control': 'no-store' });
        response.end(body);
      },
      (error: unknown) => {
        response.writeHead(500, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ error: { code: 'INTERNAL', message: String(error) } }));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(`OPS_PORT ${port} is in use; give this node another OPS_PORT, or OPS_PORT=off to run without one`)
          : error,
      ),
    );
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
