import { readFileSync } from 'node:fs';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import type { DatabaseUsage } from '@chassis/data';
import { startSimplebank } from '@chassis/simplebank/system';
import {
  lastCompletedAt,
  residentSplitMb,
  SECRET,
  seedCustomers,
  type TerminalCounts,
  terminalCounts,
  terminalTimes,
} from './simplebank-load.ts';

/**
 * The embedded SimpleBank as `npm start` runs it — every service in one process, the memory transport,
 * PGlite in a folder, the exchange simulator beside them — started by the SimpleBank benchmark as a
 * child process, so that its CPU and memory are this process's alone. It seeds the bench's customers,
 * says where its gateway listens, and answers the bench's questions about orders over IPC (PGlite has
 * one connection, in this process).
 *
 * argv: <pglite folder> <customers>
 */

export type EmbeddedAsk =
  | { ask: 'counts' }
  | { ask: 'lastCompletedAt' }
  | { ask: 'terminalTimes'; orderIds: string[] }
  | { ask: 'memory' }
  | { ask: 'usage' }
  | { ask: 'lastMajorGcAt' };

export type EmbeddedQuestion = EmbeddedAsk & { id: number };

export type EmbeddedMessage =
  | { ready: true; url: string; customers: Awaited<ReturnType<typeof seedCustomers>> }
  | { id: number; answer: TerminalCounts | number | Record<string, number> | MemoryBreakdown | DatabaseUsage }
  | { id: number; error: string };

/** Where the process's resident memory is, MB: V8's heap, and what is outside it (PGlite's WebAssembly memory, malloc). */
export interface MemoryBreakdown {
  rss: number;
  /** V8's heap as committed (what of it is resident) and as used by live objects after the last collection. */
  heapTotal: number;
  heapUsed: number;
  /** Of the heap as committed: the young generation (two semi-spaces), the old generation, code. */
  newSpace: number;
  oldSpace: number;
  codeSpace: number;
  /** Resident anonymous memory (heaps, malloc) and file-backed (the node binary, libraries), /proc/self/smaps_rollup. */
  anonymous: number;
  file: number;
  /** ArrayBuffers and WebAssembly memory that V8 knows of (PGlite's heap among them), reserved size. */
  external: number;
  /** PGlite's WebAssembly memory: its size, and how much of it is resident (from /proc/self/smaps). */
  wasm: number;
  wasmResident: number;
}

/** Every WebAssembly memory made in this process (PGlite's), to say how large it has grown. */
interface WasmMemory {
  buffer: ArrayBuffer;
}
// The project's TypeScript libraries leave WebAssembly's JavaScript API out.
const wasm = (globalThis as unknown as { WebAssembly: { Memory: new (descriptor: object) => WasmMemory } }).WebAssembly;
const wasmMemories: WasmMemory[] = [];
wasm.Memory = new Proxy(wasm.Memory, {
  construct(target, args: [object]) {
    const memory = new target(...args);
    wasmMemories.push(memory);
    return memory;
  },
});

/** Resident MB of each readable-writable mapping of exactly `bytes`, the WebAssembly memory's accessible part. */
function residentOfMappingsSized(bytes: number): number {
  let resident = 0;
  let matching = false;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) rw/.exec(line);
    if (range) matching = Number.parseInt(range[2]!, 16) - Number.parseInt(range[1]!, 16) === bytes;
    else if (/^[0-9a-f]+-/.test(line)) matching = false;
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && matching) resident += Number(rss[1]) / 1024;
  }
  return resident;
}

function memoryBreakdown(): MemoryBreakdown {
  const usage = process.memoryUsage();
  const mb = (bytes: number) => bytes / 1048576;
  const wasmBytes = wasmMemories.map((memory) => memory.buffer.byteLength);
  const spaces = getHeapSpaceStatistics();
  const space = (name: string) => mb(spaces.find((s) => s.space_name === name)?.space_size ?? 0);
  const split = residentSplitMb(process.pid);
  return {
    newSpace: space('new_space'),
    oldSpace: space('old_space'),
    codeSpace: space('code_space'),
    anonymous: split?.anonymous ?? Number.NaN,
    file: split?.file ?? Number.NaN,
    rss: mb(usage.rss),
    heapTotal: mb(usage.heapTotal),
    heapUsed: mb(usage.heapUsed),
    external: mb(usage.external),
    wasm: mb(wasmBytes.reduce((sum, bytes) => sum + bytes, 0)),
    wasmResident: [...new Set(wasmBytes)].reduce((sum, bytes) => sum + residentOfMappingsSized(bytes), 0),
  };
}

/**
 * When V8 last ended a full collection (epoch ms), for the bench to tell the load's aftermath from idle:
 * V8's memory reducer starts its collections 8–16 s after the load's last one (each full collection, and
 * each check that finds the process still allocating, puts it off by 8 s), later than the CPU alone says.
 */
let lastMajorGcAt = Date.now();
new PerformanceObserver((entries) => {
  for (const entry of entries.getEntries()) {
    if ((entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      lastMajorGcAt = Date.now();
    }
  }
}).observe({ entryTypes: ['gc'] });

const [folder, count] = process.argv.slice(2);
const send = (message: EmbeddedMessage) => process.send?.(message);

// A bench that dies (killed at a timeout) leaves no bank behind to load the machine.
process.once('disconnect', () => process.exit(1));
const bank = await startSimplebank({
  databaseUrl: `pglite://${folder}`,
  port: 0,
  // Errors only: the notifications service warns, per order, that bench customers have no contact.
  env: { LOG_LEVEL: 'error', ...process.env, RATE_LIMIT_PER_MINUTE: 'off', CHASSIS_JWT_SECRET: SECRET },
});
const customers = await seedCustomers(bank.database, Number(count));
process.on('message', (question: EmbeddedQuestion) => {
  if (question.ask === 'memory') {
    send({ id: question.id, answer: memoryBreakdown() });
    return;
  }
  if (question.ask === 'lastMajorGcAt') {
    send({ id: question.id, answer: lastMajorGcAt });
    return;
  }
  if (question.ask === 'usage') {
    const { statements, commits, rollbacks } = bank.database.usage;
    send({ id: question.id, answer: { statements, commits, rollbacks } });
    return;
  }
  const answer =
    question.ask === 'counts'
      ? terminalCounts(bank.database)
      : question.ask === 'lastCompletedAt'
        ? lastCompletedAt(bank.database)
        : terminalTimes(bank.database, question.orderIds);
  answer.then(
    (value) => send({ id: question.id, answer: value }),
    (error: unknown) => send({ id: question.id, error: String(error) }),
  );
});
process.once('SIGTERM', () => {
  bank.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
send({ ready: true, url: bank.url!, customers });
