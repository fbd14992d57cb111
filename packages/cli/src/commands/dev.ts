import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CliError, type Output } from '../output.ts';
import { findApp } from '../workspace.ts';

export interface DevOptions {
  /** The gateway's port (`PORT`). */
  port: number;
  /** The node's ops port (`OPS_PORT`): /health/*, /metrics. */
  opsPort: number;
  /** An empty in-memory database at every start instead of the app's PGlite folder. */
  fresh: boolean;
  /** Restart when a file the app imports changes (Node's --watch). */
  watch: boolean;
  /** The dashboard's port (default 9500), or false for none. */
  dashboard?: number | false;
  cwd?: string;
}

/** Answers true once `url` answers at all (any status: a 503 while starting is still an answer). */
async function answers(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(1000) });
    return true;
  } catch {
    return false;
  }
}

/** Whether nothing listens on `port` yet (0 is always free: the app picks one). */
function portFree(port: number): Promise<boolean> {
  if (port === 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * `chassis dev [app]`: the app's main in one process on the memory transport and PGlite — the embedded
 * default, whatever CHASSIS_TRANSPORT or DATABASE_URL the shell has — under `node --watch`, which
 * restarts it when a file it imports changes. Resolves to the app's exit code.
 */
export async function dev(given: string | undefined, options: DevOptions, output: Output): Promise<number> {
  const cwd = options.cwd ?? process.cwd();
  const app = findApp(given, cwd);
  const main = join(app.dir, app.main);
  if (!existsSync(main)) {
    throw new CliError(`${relative(cwd, main)} does not exist: set "chassis.main" in ${app.name}'s package.json`);
  }
  // Said at once, in one line, rather than after the app's start failed and the watcher waits for changes.
  for (const [flag, port] of [
    ['--port', options.port],
    ['--ops-port', options.opsPort],
  ] as const) {
    if (!(await portFree(port))) {
      throw new CliError(
        `port ${port} is in use (another chassis dev or npm start?): stop it or choose ${flag} <port>`,
      );
    }
  }
  const env: Record<string, string | undefined> = {
    ...process.env,
    CHASSIS_TRANSPORT: 'memory',
    SERVICES: '',
    PORT: String(options.port),
    OPS_PORT: String(options.opsPort),
    NODE_ENV: process.env.NODE_ENV ?? 'development',
    // The dashboard reads the app through its ops port, which opens to this secret only: one made up for
    // this run unless the shell has one.
    CHASSIS_OPS_SECRET: process.env.CHASSIS_OPS_SECRET || randomBytes(24).toString('base64url'),
    // Development is for looking: every trace recorded, so each call shows in the span store (`traces`).
    OTEL_TRACES_SAMPLER_ARG: process.env.OTEL_TRACES_SAMPLER_ARG ?? '1',
  };
  if (options.fresh) env.DATABASE_URL = 'pglite://memory';
  else delete env.DATABASE_URL;
  const args = [...(options.watch ? ['--watch', '--watch-preserve-output'] : []), main];
  const api = `http://127.0.0.1:${options.port}`;
  const ops = `http://127.0.0.1:${options.opsPort}`;
  output.say(
    `${output.style('bold', `chassis dev ${app.name}`)}: every service in one process, the memory transport, ${options.fresh ? 'an in-memory PGlite' : `PGlite in ${relative(cwd, join(app.dir, '.data')) || '.data'}`}${options.watch ? ', restarted when a file changes' : ''}`,
  );
  const child = spawn(process.execPath, args, { cwd: app.dir, env, stdio: 'inherit' });
  // Ctrl-C reaches the app from the terminal; a SIGTERM sent to this process alone is passed on.
  const ignore = () => {};
  const forward = () => child.kill('SIGTERM');
  process.on('SIGINT', ignore);
  process.on('SIGTERM', forward);
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal === 'SIGINT' || signal === 'SIGTERM' ? 0 : 1)));
    child.once('error', (error) => {
      output.say(`chassis: could not start ${process.execPath}: ${error.message}`);
      resolve(1);
    });
  });
  let running = true;
  void exited.then(() => {
    running = false;
  });
  // Beside the app, on its ops port: started at once (a first start builds its page), printed once ready.
  const dashboard =
    options.dashboard === false || options.opsPort === 0
      ? undefined
      : startDashboardBeside(ops, env.CHASSIS_OPS_SECRET!, options.dashboard ?? 9500);
  if (options.port !== 0 && options.opsPort !== 0) {
    // The URLs once the app answers on them, so that what is printed can be clicked: the gateway's when
    // the app has one (it listens after the node has started), else the node's ops port.
    const started = Date.now();
    const probe = app.gateway ? `${api}/openapi.json` : `${ops}/health/live`;
    while (running && !(await answers(probe))) await sleep(200);
    if (running) {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      output.say(`${output.style('green', 'ready')} in ${seconds} s`);
      if (app.gateway) {
        output.say(`  API      ${output.style('cyan', api)}   (docs ${api}/docs, OpenAPI ${api}/openapi.json)`);
      }
      output.say(`  ops      ${output.style('cyan', `${ops}/health/ready`)}, ${ops}/metrics`);
      const served = await dashboard;
      if (served && 'url' in served) output.say(`  dashboard ${output.style('cyan', served.url)}`);
      else if (served) output.say(`  dashboard not started: ${served.problem}`);
      output.say(`  Ctrl-C stops it${options.watch ? '; saving a file restarts it' : ''}`);
    }
  }
  const code = await exited;
  const served = await dashboard;
  if (served && 'close' in served) await served.close();
  process.off('SIGINT', ignore);
  process.off('SIGTERM', forward);
  return code;
}

/** The dashboard on the app's ops port; what went wrong instead (a port in use), which does not stop the app. */
async function startDashboardBeside(
  ops: string,
  secret: string,
  port: number,
): Promise<{ url: string; close: () => Promise<void> } | { problem: string }> {
  try {
    const { openDashboard } = await import('./dashboard.ts');
    const { dashboard, connection } = await openDashboard({ ops, secret, port });
    return {
      url: dashboard.url,
      close: async () => {
        await dashboard.close();
        await connection.close();
      },
    };
  } catch (error) {
    return { problem: `${(error as Error).message} (--dashboard-port <port>, or --no-dashboard)` };
  }
}
