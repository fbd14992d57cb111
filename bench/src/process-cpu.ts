import { readdirSync, readFileSync } from 'node:fs';

/** CPU seconds (user + system) each process had used when read, by pid, with its command name. */
export type CpuReading = Map<number, { comm: string; seconds: number }>;

/** Linux's clock ticks per second for /proc/<pid>/stat; 100 on every mainstream kernel. */
const TICKS_PER_SECOND = 100;

/**
 * Every process's CPU time from /proc, or undefined where there is none (not Linux). A benchmark reads
 * it before and after a run to say where the CPU went — which holds on any machine size, unlike
 * throughput on this one.
 */
export function readProcessCpu(): CpuReading | undefined {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  const reading: CpuReading = new Map();
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      // Fields after the command: state is the 1st, utime the 12th and stime the 13th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      reading.set(Number(pid), { comm, seconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND });
    } catch {
      // Gone between the listing and the read.
    }
  }
  return reading;
}

/**
 * CPU seconds used between two readings by each group `groupOf` names (processes it gives no group
 * are left out). A process started in between counts from zero.
 */
export function cpuUsedBetween(
  before: CpuReading,
  after: CpuReading,
  groupOf: (pid: number, comm: string) => string | undefined,
): Record<string, number> {
  const used: Record<string, number> = {};
  for (const [pid, { comm, seconds }] of after) {
    const group = groupOf(pid, comm);
    if (!group) continue;
    used[group] = (used[group] ?? 0) + seconds - (before.get(pid)?.seconds ?? 0);
  }
  return used;
}

/** One process's CPU seconds so far (user + system, every thread), from /proc; NaN where there is none. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}
