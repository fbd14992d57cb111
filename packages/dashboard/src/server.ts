import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { ChassisError, toChassisError } from '@chassis/core';
import { DIST_DIR, ensureBuilt } from './build.ts';
import type { OpsConnection } from './connection.ts';
import { parseServerTotals, RedHistory } from './metrics.ts';

export interface DashboardOptions {
  /** How the server reaches the system (the CLI's `connect`). */
  connection: OpsConnection;
  /** Default 9500; 0 picks a free one. */
  port?: number;
  /** Default 127.0.0.1: the server holds the ops credentials, so it is for this machine only. */
  host?: string;
  /** How often the RED history reads each node's /metrics. Default 5000 ms; 0 never. */
  metricsEveryMs?: number;
  /** Timeout of one ops request the page makes through the server. Default 15 000 ms. */
  opsTimeoutMs?: number;
}

export interface Dashboard {
  /** e.g. `http://127.0.0.1:9500/` */
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  /** Stops serving and polling; the connection is the caller's to close. */
  close(): Promise<void>;
}

/** The header every API request of the page carries: a page of another site cannot send it without a preflight this server never allows. */
export const DASHBOARD_HEADER = 'x-chassis-dashboard';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};

/**
 * Starts the dashboard: the built browser app (built first when missing or stale) and `/api/…`, which
 * passes the page's requests to the system's ops API with the operator's credentials — the page never
 * holds them. `POST /api/ops/<action>` asks one node (`nodeId`, else the first), `POST /api/each/<action>`
 * asks every node and answers each one's output or error, `GET /api/status` says whether the system
 * answers, `GET /api/red` the RED history.
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  await ensureBuilt();
  const { connection } = options;
  const opsTimeoutMs = options.opsTimeoutMs ?? 15_000;
  const host = options.host ?? '127.0.0.1';
  const history = new RedHistory();
  const metricsUrls = new Map<string, string | null>();

  async function metricsUrlOf(nodeId: string): Promise<string | null> {
    if (connection.kind === 'http') return `${connection.target.replace(/\/+$/, '')}/metrics`;
    if (!metricsUrls.has(nodeId)) {
      const info = (await connection.ops(nodeId, 'node', {}, 5_000)) as { host?: string; opsPort?: number | null };
      metricsUrls.set(nodeId, info.opsPort ? `http://${info.host}:${info.opsPort}/metrics` : null);
    }
    return metricsUrls.get(nodeId) ?? null;
  }

  async function pollMetrics(): Promise<void> {
    let nodeIds: string[];
    try {
      nodeIds = await connection.nodeIds();
    } catch {
      return;
    }
    await Promise.all(
      nodeIds.map(async (nodeId) => {
        try {
          const url = await metricsUrlOf(nodeId);
          if (!url) return;
          const response = await fetch(url, { signal: AbortSignal.timeout(3_000) });
          if (response.ok) history.add(nodeId, Date.now(), parseServerTotals(await response.text()));
        } catch {
          // A node whose /metrics does not answer has no sparkline; the Health view says why from its health.
        }
      }),
    );
  }

  async function api(request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    if (request.headers[DASHBOARD_HEADER] !== '1') {
      throw new ChassisError(
        'FORBIDDEN',
        `The dashboard API answers the dashboard's page only (header ${DASHBOARD_HEADER})`,
      );
    }
    if (path === 'status') {
      try {
        const nodeIds = await connection.nodeIds();
        // Asked, not remembered: a connection to an ops port knows its node's id from before the node went
        // away. (Through a broker the node ids are the heartbeats heard lately: fresh already.)
        if (connection.kind === 'http' && nodeIds[0] !== undefined) await connection.ops(nodeIds[0], 'node', {}, 3_000);
        return send(response, 200, { target: connection.target, kind: connection.kind, reachable: true, nodeIds });
      } catch (error) {
        const failure = toChassisError(error);
        return send(response, 200, {
          target: connection.target,
          kind: connection.kind,
          reachable: false,
          error: { code: failure.code, message: failure.message },
        });
      }
    }
    if (path === 'red') return send(response, 200, history.list());
    const match = /^(ops|each)\/([a-z0-9./]+)$/.exec(path);
    if (!match || request.method !== 'POST')
      throw new ChassisError('NOT_FOUND', `No dashboard API ${request.method} /api/${path}`);
    const action = match[2]!.replaceAll('/', '.');
    const body = (await readJson(request)) as {
      input?: unknown;
      nodeId?: string;
      service?: string;
      timeoutMs?: number;
    };
    const asked = body.timeoutMs;
    const timeoutMs =
      typeof asked === 'number' && Number.isFinite(asked) && asked > 0 ? Math.min(asked, 600_000) : opsTimeoutMs;
    if (match[1] === 'ops') {
      const nodeId = body.nodeId ?? (await connection.nodeIds(body.service))[0];
      if (nodeId === undefined) throw new ChassisError('NO_SERVICE', 'No node of the system answers');
      return send(response, 200, await connection.ops(nodeId, action, body.input ?? {}, timeoutMs));
    }
    const nodeIds = await connection.nodeIds();
    const answers = await Promise.all(
      nodeIds.map(async (nodeId) => {
        try {
          return { nodeId, output: await connection.ops(nodeId, action, body.input ?? {}, timeoutMs) };
        } catch (error) {
          const failure = toChassisError(error);
          return { nodeId, error: { code: failure.code, message: failure.message, details: failure.data } };
        }
      }),
    );
    return send(response, 200, answers);
  }

  async function asset(response: ServerResponse, path: string): Promise<void> {
    const file = normalize(join(DIST_DIR, path === '' ? 'index.html' : path));
    if (!file.startsWith(DIST_DIR)) throw new ChassisError('NOT_FOUND', 'No such file');
    let content: Buffer;
    try {
      content = await readFile(file);
    } catch {
      throw new ChassisError('NOT_FOUND', `No file /${path}`);
    }
    response.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      // Vite's file names carry a content hash; index.html does not and must be read again.
      'cache-control': path.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff',
      'content-security-policy':
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
    });
    response.end(content);
  }

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://dashboard');
    const path = decodeURIComponent(url.pathname).replace(/^\/+/, '');
    const handled = path.startsWith('api/') ? api(request, response, path.slice(4)) : asset(response, path);
    handled.catch((error: unknown) => {
      const failure = toChassisError(error);
      if (!response.headersSent) {
        send(response, failure.status, {
          error: { code: failure.code, message: failure.message, details: failure.data },
        });
      } else response.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new ChassisError('CONFIG', `Port ${options.port ?? 9500} is in use: choose another with --port`)
          : error,
      ),
    );
    server.listen(options.port ?? 9500, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const every = options.metricsEveryMs ?? 5_000;
  const timer = every > 0 ? setInterval(() => void pollMetrics(), every) : undefined;
  timer?.unref();
  if (every > 0) void pollMetrics();
  return {
    url: `http://${host}:${port}/`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        if (timer) clearInterval(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  response.end(JSON.stringify(body ?? null));
}

const MAX_BODY = 4 * 1024 * 1024;

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new ChassisError('VALIDATION', 'The request body is larger than 4 MiB');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new ChassisError('VALIDATION', 'The request body is not JSON');
  }
}
