import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

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
}

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The ops port: `/health/live`, `/health/ready` (503 unless `pass` or `warn`) and `/metrics`.
 * Plain node:http: three read-only routes need no framework, and the port must answer even when the
 * node's own HTTP edge is busy or not there.
 */
export async function startOpsServer(port: number, endpoints: OpsEndpoints, host = '0.0.0.0'): Promise<OpsServer> {
  const health = async (report: Promise<HealthReport>) => {
    const body = await report;
    return { status: body.status === 'fail' ? 503 : 200, type: 'application/health+json', body: JSON.stringify(body) };
  };
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const route =
      request.method !== 'GET'
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
        JSON.stringify({ error: { code: 'NOT_FOUND', message: 'Try /health/live, /health/ready or /metrics' } }),
      );
      return;
    }
    route().then(
      ({ status, type, body }) => {
        response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
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
