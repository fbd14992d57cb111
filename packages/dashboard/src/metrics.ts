/**
 * RED figures (rate, errors, duration) per action, as a short rolling history the dashboard server keeps
 * by reading each node's Prometheus `/metrics` every few seconds. Kept here rather than in the page so a
 * reload or a second tab shows the last minutes at once, and because the page reaches the system only
 * through this server; read from /metrics because the counters are there already (open, no token), and
 * nothing has to be added to the nodes for it.
 */

/** One action's figures over one polling interval. */
export interface RedPoint {
  /** When the interval ended (epoch ms). */
  at: number;
  /** Requests per second. */
  rate: number;
  /** Failed requests per second (every outcome but `ok`). */
  errors: number;
  /** Mean duration of the interval's requests, ms (null when there were none). */
  meanMs: number | null;
}

export interface RedSeries {
  /** `<service>.<action>` */
  action: string;
  nodeId: string;
  points: RedPoint[];
}

interface Totals {
  count: number;
  errors: number;
  sumSeconds: number;
}

const SERVER_DURATION = /^chassis_rpc_server_duration_seconds_(count|sum)\{([^}]*)\}\s+(\S+)/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

/** The request totals per action in a Prometheus text exposition (the two series RED needs). */
export function parseServerTotals(text: string): Map<string, Totals> {
  const totals = new Map<string, Totals>();
  for (const line of text.split('\n')) {
    const match = SERVER_DURATION.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, name, value] of match[2]!.matchAll(LABEL)) labels[name!] = value!;
    const key = `${labels.service}.${labels.action}`;
    const value = Number(match[3]);
    const entry = totals.get(key) ?? { count: 0, errors: 0, sumSeconds: 0 };
    if (match[1] === 'count') {
      entry.count += value;
      if (labels.outcome !== 'ok') entry.errors += value;
    } else {
      entry.sumSeconds += value;
    }
    totals.set(key, entry);
  }
  return totals;
}

/** Keeps `size` intervals per action and node from successive totals. */
export class RedHistory {
  private readonly last = new Map<string, { at: number; totals: Map<string, Totals> }>();
  private readonly series = new Map<string, RedSeries>();

  private readonly size: number;

  constructor(size = 60) {
    this.size = size;
  }

  add(nodeId: string, at: number, totals: Map<string, Totals>): void {
    const previous = this.last.get(nodeId);
    this.last.set(nodeId, { at, totals });
    if (!previous || at <= previous.at) return;
    const seconds = (at - previous.at) / 1000;
    for (const [action, now] of totals) {
      const before = previous.totals.get(action) ?? { count: 0, errors: 0, sumSeconds: 0 };
      // A restarted node starts its counters again: that interval says nothing.
      if (now.count < before.count) continue;
      const count = now.count - before.count;
      const key = `${nodeId} ${action}`;
      const entry = this.series.get(key) ?? { action, nodeId, points: [] };
      entry.points.push({
        at,
        rate: count / seconds,
        errors: (now.errors - before.errors) / seconds,
        meanMs: count === 0 ? null : ((now.sumSeconds - before.sumSeconds) * 1000) / count,
      });
      if (entry.points.length > this.size) entry.points.shift();
      this.series.set(key, entry);
    }
  }

  list(): RedSeries[] {
    return [...this.series.values()].sort(
      (a, b) => a.action.localeCompare(b.action) || a.nodeId.localeCompare(b.nodeId),
    );
  }
}
