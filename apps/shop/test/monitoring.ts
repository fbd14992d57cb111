import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Shop's monitoring files: its Grafana dashboard and its Prometheus rules with their unit tests. */
export const shopMonitoringDir = fileURLToPath(new URL('../../../deploy/monitoring/shop/', import.meta.url));
export const chassisMonitoringDir = fileURLToPath(new URL('../../../deploy/monitoring/', import.meta.url));
export const shopDashboardFile = join(shopMonitoringDir, 'grafana', 'shop.json');
export const shopRulesDir = join(shopMonitoringDir, 'prometheus');

export interface DashboardQuery {
  where: string;
  expr: string;
}

interface DashboardJson {
  uid: string;
  title: string;
  panels: {
    type: string;
    title: string;
    datasource?: { uid: string };
    targets?: { refId: string; expr: string; datasource: { uid: string } }[];
  }[];
  templating: { list: { name: string }[] };
}

export function shopDashboard(): DashboardJson {
  return JSON.parse(readFileSync(shopDashboardFile, 'utf8')) as DashboardJson;
}

/** Every panel query of the Shop's dashboard, named `panel title › refId`. */
export function shopDashboardQueries(): DashboardQuery[] {
  return shopDashboard().panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ where: `${panel.title} › ${target.refId}`, expr: target.expr })),
  );
}

/** The alert rules' expressions, as written in shop.yml. */
export function shopRuleExpressions(): string[] {
  const text = readFileSync(join(shopRulesDir, 'shop.yml'), 'utf8');
  return [...text.matchAll(/expr: (?:\|\n((?: {10}.*\n)+)|(.+)\n)/g)].map((match) => (match[1] ?? match[2]!).trim());
}

/**
 * The metric names the dashboard and the rules read (PromQL's functions and keywords are followed by `(`
 * or are label names; metric names here all start with a known prefix).
 */
export function shopMonitoringMetricNames(): string[] {
  const exprs = [...shopDashboardQueries().map((query) => query.expr), ...shopRuleExpressions()];
  const names = exprs.flatMap((expr) => expr.match(/\b(?:shop|node|chassis)_\w+/g) ?? []);
  return [...new Set(names)].sort();
}

/** The chassis's rule files (and other apps' beside them), which the Shop's Prometheus loads too. */
export const chassisRulesDir = join(chassisMonitoringDir, 'prometheus', 'rules');

/** How many alerts each rule file the Shop's Prometheus loads defines, by path. */
export function loadedRuleCounts(): Map<string, number> {
  const files = [
    ...readdirSync(chassisRulesDir)
      .filter((file) => file.endsWith('.yml'))
      .map((file) => join(chassisRulesDir, file)),
    join(shopRulesDir, 'shop.yml'),
  ];
  return new Map(files.map((file) => [file, (readFileSync(file, 'utf8').match(/^\s*- alert: \w+$/gm) ?? []).length]));
}
