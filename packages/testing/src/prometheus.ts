import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitUntil } from './infra.ts';

/**
 * A real Prometheus for the apps' monitoring tests: their dashboards' queries and alert rules checked
 * against the metrics their processes really serve. It scrapes and evaluates each second, on job
 * `chassis` (the job the rules and dashboards select), from a folder of its own that `stop` removes.
 */

/** A process Prometheus scrapes: its ops port, with the labels the dashboards group by. */
export interface PrometheusTarget {
  instance: string;
  port: number;
  /** Default: the instance without a trailing `-<n>` (`orders-2` is in group `orders`). */
  group?: string;
}

/** What `/api/v1/query` answers. */
export interface PrometheusAnswer {
  status: string;
  error?: string;
  data?: { result: { metric: Record<string, string> }[] };
}

export interface PrometheusRule {
  name: string;
  health: string;
  lastError?: string;
  /** `0001-01-01…` until the rule is first evaluated. */
  lastEvaluation: string;
}

export interface PrometheusRuleGroup {
  name: string;
  rules: PrometheusRule[];
}

/** A query named for where it comes from (`panel title › refId`), for a message that says which. */
export interface NamedQuery {
  where: string;
  expr: string;
}

export interface PrometheusOptions {
  targets: readonly PrometheusTarget[];
  /** The rule files it loads: paths or globs (`…/rules/*.yml`). */
  ruleFiles: readonly string[];
  /** Where its output lines go, each as `[prometheus] …`, for a failure's message. */
  log?: (line: string) => void;
}

export interface LivePrometheus {
  /** Its HTTP API, `http://127.0.0.1:<port>`. */
  readonly url: string;
  query(expr: string): Promise<PrometheusAnswer>;
  /** The rule groups it has loaded, each rule with its health and last evaluation. */
  ruleGroups(): Promise<PrometheusRuleGroup[]>;
  /**
   * The queries that have no data yet, or fail, each as `where: why (expr)`, asked again each second until
   * none is left or `timeoutMs` has passed: series appear only once traffic has gone through. `rewrite`
   * makes each expression what is sent (Grafana's variables filled in, say); the message names it as written.
   */
  withoutData(
    queries: readonly NamedQuery[],
    options?: { rewrite?: (expr: string) => string; timeoutMs?: number },
  ): Promise<string[]>;
  /** Stops it and removes its folder. */
  stop(): Promise<void>;
}

/** Starts Prometheus (on the PATH: check with `skipUnlessInstalled('prometheus', …)`) and waits until it is ready. */
export async function startPrometheus(options: PrometheusOptions): Promise<LivePrometheus> {
  const log = options.log ?? (() => undefined);
  const dir = await mkdtemp(join(tmpdir(), 'chassis-prometheus-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const targets = options.targets.map(
    ({ instance, port, group = instance.replace(/-\d+$/, '') }) =>
      `      - targets: ['127.0.0.1:${port}']\n        labels: { instance: ${instance}, group: ${group} }`,
  );
  await writeFile(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      `rule_files: [${options.ruleFiles.map((file) => `'${file}'`).join(', ')}]`,
      'scrape_configs:',
      '  - job_name: chassis',
      `    static_configs:${targets.length === 0 ? ' []' : ''}`,
      ...targets,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.on('data', (chunk: Buffer) => log(`[prometheus] ${chunk.toString().trim()}`));
  child.on('exit', (code, signal) => log(`[prometheus] exited with ${signal ?? code}`));
  child.on('error', (error) => log(`[prometheus] ${error.message}`));

  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const stop = async () => {
    if (!exited() && child.pid !== undefined) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await rm(dir, { recursive: true, force: true });
  };
  const get = async <T>(path: string): Promise<T> => (await (await fetch(`${url}${path}`)).json()) as T;
  const query = (expr: string) => get<PrometheusAnswer>(`/api/v1/query?query=${encodeURIComponent(expr)}`);

  try {
    await waitUntil(
      async () => {
        if (exited()) throw new Error('Prometheus exited before it was ready (its output is in the log)');
        return (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok === true;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: `Prometheus to be ready at ${url}` },
    );
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    url,
    query,
    ruleGroups: async () => (await get<{ data: { groups: PrometheusRuleGroup[] } }>('/api/v1/rules')).data.groups,
    async withoutData(queries, { rewrite = (expr: string) => expr, timeoutMs = 30_000 } = {}) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const answers = await Promise.all(queries.map(({ expr }) => query(rewrite(expr))));
        const missing = queries.flatMap(({ where, expr }, i) => {
          const answer = answers[i]!;
          if (answer.status !== 'success') return [`${where}: ${answer.error} (${expr})`];
          return answer.data?.result.length ? [] : [`${where}: no data (${expr})`];
        });
        if (missing.length === 0 || Date.now() >= until) return missing;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    },
    stop,
  };
}
