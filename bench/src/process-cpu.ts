import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** CPU seconds (user + system) each process had used when read, by pid, with its command name. */
export type CpuReading = Map<number, { comm: string; parent: number; seconds: number }>;

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
      // The parent's pid is the 2nd: what tells one PostgreSQL cluster's backends from another's.
      const parent = Number(fields[1]);
      reading.set(Number(pid), { comm, parent, seconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND });
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
  groupOf: (pid: number, comm: string, parent: number) => string | undefined,
): Record<string, number> {
  const used: Record<string, number> = {};
  for (const [pid, { comm, parent, seconds }] of after) {
    const group = groupOf(pid, comm, parent);
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

/** The whole machine's CPU time so far, in ticks: all of it, and what the hypervisor took (steal). */
export interface MachineTicks {
  total: number;
  steal: number;
}

/** The machine's CPU time from /proc/stat's first line; undefined where there is none (not Linux). */
export function readMachineTicks(): MachineTicks | undefined {
  try {
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user).
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    if (fields.length < 8 || fields.some((n) => !Number.isFinite(n))) return undefined;
    return { total: fields.reduce((sum, n) => sum + n, 0), steal: fields[7]! };
  } catch {
    return undefined;
  }
}

/**
 * The share of the machine's CPU time between two readings that its hypervisor gave to other guests
 * (steal), NaN where it cannot be read. On a shared VM a round measured while the host is busy takes
 * more CPU per operation (caches and the cores' time shared with strangers), whatever the code: a
 * figure is comparable with another only at a like steal.
 */
export function stealShareBetween(before: MachineTicks | undefined, after: MachineTicks | undefined): number {
  if (!before || !after || after.total <= before.total) return Number.NaN;
  return (after.steal - before.steal) / (after.total - before.total);
}

/**
 * The pid of the local process listening on TCP `port` (IPv4 or IPv6, any address), from /proc/net and
 * the processes' open sockets; undefined if none is found (not Linux, another host, another user's
 * process). Several servers of one kind (PostgreSQL clusters, nats-servers) run side by side on a shared
 * machine: this is how a benchmark counts only the one it talks to.
 */
export function listeningPid(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode; 0A is LISTEN.
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      if (!local || fields[3] !== '0A') continue;
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port && fields[9]) inodes.add(fields[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith('socket:[') && inodes.has(target.slice(8, -1))) return Number(pid);
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return undefined;
}
