import { spawnSync } from 'node:child_process';

/**
 * Reads Prometheus text exposition for assertions: metric families with their type and samples.
 * Whether the text is valid is promtool's call (`promtoolCheck`); this only pulls samples out.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  type: string;
  samples: Sample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: Family | undefined;
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      current = { type: type[2]!, samples: [] };
      families.set(type[1]!, current);
      continue;
    }
    if (line.startsWith('#') || line.trim() === '') continue;
    const sample = SAMPLE.exec(line);
    if (!sample || !current) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (sample[2] ?? '').matchAll(LABEL)) {
      labels[key!] = value!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    current.samples.push({ name: sample[1]!, labels, value: Number(sample[3]) });
  }
  return families;
}

/** promtool's verdict on exposition text: undefined when valid, else its complaint. */
export function promtoolCheck(text: string): string | undefined {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (result.error) throw result.error;
  // promtool exits 1 for text it cannot parse, 3 for lint notes — prom-client’s own Node metrics draw some
  // (gauges named *_total), ours none.
  return result.status === 1 ? result.stderr || result.stdout : undefined;
}
