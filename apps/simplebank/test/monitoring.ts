import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';

/**
 * What the monitoring tests read from deploy/monitoring: the Grafana dashboards' queries and the
 * Prometheus rules' expressions, parsed with the shapes the tests rely on.
 */

export const monitoringDir = fileURLToPath(new URL('../../../deploy/monitoring/', import.meta.url));
export const prometheusDir = join(monitoringDir, 'prometheus');
export const rulesDir = join(prometheusDir, 'rules');
export const dashboardsDir = join(monitoringDir, 'grafana', 'dashboards');

const Target = z.object({ refId: z.string(), expr: z.string().min(1), datasource: z.object({ uid: z.string() }) });
const Panel = z.object({
  id: z.number(),
  type: z.string(),
  title: z.string().min(1),
  datasource: z.object({ uid: z.string() }).optional(),
  targets: z.array(Target).optional(),
});
const Variable = z.object({
  name: z.string(),
  type: z.string(),
  query: z.union([z.string(), z.object({ query: z.string() })]),
});
export const Dashboard = z.object({
  uid: z.string().min(1),
  title: z.string().min(1),
  tags: z.array(z.string()).default([]),
  panels: z.array(Panel),
  templating: z.object({ list: z.array(Variable) }),
});
export type Dashboard = z.infer<typeof Dashboard>;

export interface DashboardFile {
  file: string;
  dashboard: Dashboard;
}

/** The apps with dashboards of their own here, tagged with the app's name (the rest are the chassis's). */
export const APP_TAGS = ['simplebank', 'newsportal'] as const;
export type App = (typeof APP_TAGS)[number];

/**
 * The dashboards, or with `app` those that show it: the chassis's (no app's tag) and the app's own —
 * another app's panels have no data where only this one runs.
 */
export function dashboards(app?: App): DashboardFile[] {
  return readdirSync(dashboardsDir)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => ({ file, dashboard: Dashboard.parse(JSON.parse(readFileSync(join(dashboardsDir, file), 'utf8'))) }))
    .filter(
      ({ dashboard }) => app === undefined || !APP_TAGS.some((tag) => tag !== app && dashboard.tags.includes(tag)),
    );
}

export interface PanelQuery {
  where: string;
  expr: string;
}

/** Every panel query of every dashboard (of those that show `app`), named `file › panel title › refId`. */
export function panelQueries(app?: App): PanelQuery[] {
  return dashboards(app).flatMap(({ file, dashboard }) =>
    dashboard.panels.flatMap((panel) =>
      (panel.targets ?? []).map((target) => ({
        where: `${file} › ${panel.title} › ${target.refId}`,
        expr: target.expr,
      })),
    ),
  );
}

/**
 * Every template variable's query, as PromQL: Grafana's `label_values(selector, label)` asks for the
 * series of `selector` (the variable has values when it has any).
 */
export function variableQueries(app?: App): PanelQuery[] {
  return dashboards(app).flatMap(({ file, dashboard }) =>
    dashboard.templating.list.map((variable) => {
      const query = typeof variable.query === 'string' ? variable.query : variable.query.query;
      const labelValues = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
      return {
        where: `${file} › $${variable.name}`,
        expr: labelValues ? `count by (${labelValues[2]}) (${labelValues[1]})` : query,
      };
    }),
  );
}

/**
 * The expression as Grafana would send it with every variable on "All": each dashboard variable is used
 * as `label=~"$name"`, so `.*`; `$__rate_interval` is the window Grafana would pick for `scrapeInterval`
 * (four scrapes at least; a minute here).
 */
export function withGrafanaVariables(expr: string, rateInterval = '1m'): string {
  return expr
    .replaceAll('$__rate_interval', rateInterval)
    .replaceAll('$__interval', '15s')
    .replaceAll('$__range', '1h')
    .replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, '.*');
}

const RuleFile = z.object({
  groups: z.array(
    z.object({
      name: z.string(),
      rules: z.array(z.object({ alert: z.string().optional(), record: z.string().optional(), expr: z.string() })),
    }),
  ),
});

/** Every alerting and recording rule's expression (of the given rule files), named `file › group › alert`. */
export function ruleExpressions(files?: readonly string[]): PanelQuery[] {
  return readdirSync(rulesDir)
    .filter((file) => file.endsWith('.yml') && (files === undefined || files.includes(file)))
    .sort()
    .flatMap((file) =>
      RuleFile.parse(parse(readFileSync(join(rulesDir, file), 'utf8'))).groups.flatMap((group) =>
        group.rules.map((rule) => ({
          where: `${file} › ${group.name} › ${rule.alert ?? rule.record}`,
          expr: rule.expr,
        })),
      ),
    );
}
