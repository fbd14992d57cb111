import { readFileSync } from 'node:fs';
import { processCpuSeconds } from './process-cpu.ts';

/**
 * What the NATS server did for the measured orders, read from its monitoring port (`BENCH_NATS_MONITOR`,
 * e.g. http://127.0.0.1:8222, the server's `-m`) before and after a round: messages in and out, JetStream
 * API requests (pull requests are not among them), and per consumer the messages delivered, redelivered and
 * acked; and, where the server runs on this machine (`pid`), its read and write system calls.
 */
export interface NatsReading {
  inMsgs: number;
  outMsgs: number;
  apiTotal: number;
  streamMessages: number;
  consumers: Map<string, { delivered: number; acked: number; redelivered: number }>;
  cpuSeconds: number;
  /** The server's read and write system calls (/proc/<pid>/io): what batching on the clients' side saves it. */
  reads: number;
  writes: number;
}

const MONITOR = process.env.BENCH_NATS_MONITOR;

interface Jsz {
  messages: number;
  api: { total: number };
  account_details?: {
    stream_detail?: {
      name: string;
      consumer_detail?: {
        name: string;
        delivered: { consumer_seq: number };
        ack_floor: { consumer_seq: number };
        num_redelivered: number;
        num_ack_pending: number;
      }[];
    }[];
  }[];
}

/** The server's figures now; `pid` is the server's process where it is local (see `listeningPid`). */
export async function readNats(pid: number | undefined): Promise<NatsReading | undefined> {
  if (!MONITOR) return undefined;
  const varz = (await (await fetch(`${MONITOR}/varz`)).json()) as { in_msgs: number; out_msgs: number };
  const jsz = (await (await fetch(`${MONITOR}/jsz?consumers=true`)).json()) as Jsz;
  const consumers = new Map<string, { delivered: number; acked: number; redelivered: number }>();
  for (const account of jsz.account_details ?? []) {
    for (const stream of account.stream_detail ?? []) {
      for (const c of stream.consumer_detail ?? []) {
        consumers.set(`${stream.name}/${c.name}`, {
          delivered: c.delivered.consumer_seq,
          // Acked so far: what is delivered and not pending (the floor alone lags behind out-of-order acks).
          acked: c.delivered.consumer_seq - c.num_ack_pending,
          redelivered: c.num_redelivered,
        });
      }
    }
  }
  return {
    inMsgs: varz.in_msgs,
    outMsgs: varz.out_msgs,
    apiTotal: jsz.api.total,
    streamMessages: jsz.messages,
    consumers,
    cpuSeconds: pid === undefined ? Number.NaN : processCpuSeconds(pid),
    ...syscalls(pid),
  };
}

function syscalls(pid: number | undefined): { reads: number; writes: number } {
  if (pid === undefined) return { reads: Number.NaN, writes: Number.NaN };
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? Number.NaN);
    return { reads: field('syscr'), writes: field('syscw') };
  } catch {
    return { reads: Number.NaN, writes: Number.NaN };
  }
}

/** The lines to print: each figure per completed order. */
export function natsCensus(before: NatsReading | undefined, after: NatsReading | undefined, orders: number): string[] {
  if (!before || !after || orders <= 0) return [];
  const per = (n: number) => (n / orders).toFixed(2);
  const lines = [
    `  NATS per completed order (${orders} orders): ${per(after.inMsgs - before.inMsgs)} messages in, ${per(after.outMsgs - before.outMsgs)} out, ` +
      `${per(after.apiTotal - before.apiTotal)} JetStream API requests (pulls not counted), ${per(after.streamMessages - before.streamMessages)} stream messages kept` +
      (Number.isFinite(after.cpuSeconds)
        ? `; nats-server ${(((after.cpuSeconds - before.cpuSeconds) * 1000) / orders).toFixed(2)} ms of CPU`
        : '') +
      (Number.isFinite(after.reads)
        ? `, ${per(after.reads - before.reads)} reads and ${per(after.writes - before.writes)} writes (system calls)`
        : ''),
  ];
  for (const [name, c] of after.consumers) {
    const b = before.consumers.get(name) ?? { delivered: 0, acked: 0, redelivered: 0 };
    const delivered = c.delivered - b.delivered;
    if (delivered === 0) continue;
    lines.push(
      `    ${name}: ${per(delivered)} delivered, ${per(c.acked - b.acked)} acked, ${per(c.redelivered - b.redelivered)} redelivered`,
    );
  }
  return lines;
}
