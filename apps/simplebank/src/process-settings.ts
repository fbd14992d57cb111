import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * How every SimpleBank process runs: Node.js flags and glibc malloc settings that keep its resident
 * memory small. `npm start` passes the flags (package.json); `main.ts` starts itself again with whatever
 * is missing (`withProcessSettings`), which is how the malloc settings reach a process started by hand
 * or by the container image; the launcher gives both to the processes it spawns.
 *
 * Node 24 lets V8's young generation grow to two 64 MB semi-spaces on a 64-bit build without pointer
 * compression, and a busy SimpleBank process fills them: 128 MB of heap that only the memory reducer
 * gives back, seconds after the load. At 16 MB a semi-space (Node 22's default), measured on a loaded
 * 2-core machine, 15 s of 8 clients against the embedded bank: RSS after the load 414–457 → 336–375 MB,
 * 10 s later 432–473 → 272–292 MB; scavenge pauses 5.1–5.8 → 6.9 ms per order. At 8 MB (V8 rounds a
 * size to a power of two: 6 is 8), with the compile cache below, distributed at 16 clients, three runs
 * each alternating on the loaded machine: a process's young generation 32 → 16 MB, RSS after the load
 * 152–164 → 129–149 MB a process on average (the edge, the largest, 168–180 → 155–161), CPU per order
 * unchanged (15.6 ms at 62 orders/s against 15.9–16.7 at 61–65), scavenge pauses 1.7–3.0 → 2.7–3.0 ms an
 * order over all processes. At 4 MB: the edge 147–155 MB, but CPU per order up in each paired run
 * (Chassis 24.3 ms against 13.3 at the same 35 orders/s) as objects live past the smaller scavenges.
 *
 * `--heap-growing-percent=50`: after each full collection V8 lets the old generation grow by half of
 * what survived it, where it picks a factor between 1.1 and 4 itself (high for a process that allocates
 * fast and collects fast, as these do). Distributed, 16 clients, five runs each alternating with main
 * on the 2-core machine loaded by other benchmarks (11–37 completed orders/s): the processes other than
 * the edge 117–139 → 118–129 MB after the load (average of the five 119–135 → 120–124; old space 28–35 →
 * 26–28 MB), the edge 144–150 → 142–148; full-collection pauses over all processes 0–0.24 → 0.45–2.43
 * ms an order (V8 now collects during the load; before, the 27 s of load ended before its first
 * collection), scavenges unchanged. Chassis CPU per order followed the machine (18.9–38.7 ms old,
 * 20.0–38.7 new; in each adjacent pair new − old: +1.1, +0.1, −7.8, −6.0, +13.3 with the machine
 * at 15 against 26 orders/s).
 * At a fixed 15 orders/s offered (the open loop, after the same warm-up; two runs of new against three
 * of old, alternating): the others 118–131 against 123–138 MB, the edge 138–143 against 146–148,
 * Chassis CPU per order 32.7–41.1 against 32.5–37.8 ms.
 *
 * Not here: `--max-old-space-size=512`. Below a 2 GB limit V8 grows the old generation by a smaller
 * factor after each full collection (1.4 at 512 MB instead of up to 4): 124–131 MB a process on average
 * and the edge 149–155, embedded 265–287 MB after the load — but the Chassis processes took 12.5–12.8 ms
 * of CPU an order against 10.6–11.2 (more full collections), and a process whose live heap outgrows it dies.
 *
 * Not here: `--optimize-for-size`. It makes V8 grow its old generation by little before it collects —
 * the embedded bank's heap right after 15 s of 8 clients 60 MB instead of 121–183 (~50 live either way),
 * RSS after the load 227–256 MB instead of 304–374, distributed 111–132 MB a process instead of 148–171
 * — but in alternating runs it took 39.6–50.2 ms of CPU per order at 17–23 completed orders/s against
 * 29.9–33.5 ms at 30–32 without it, and the idle bank 5.4–6.0% of a core against 0.6–1.2%.
 */
export const SIMPLEBANK_NODE_ARGS: readonly string[] = ['--max-semi-space-size=8', '--heap-growing-percent=50'];

/**
 * The embedded bank's flags (`npm start`: every service in one process on the memory transport, PGlite):
 * the same semi-spaces, and V8's old generation grown by 20% of what survives a full collection instead
 * of by a factor V8 picks between 1.1 and 4 (it picks high for a fast allocator: 85–162 MB of old space
 * after the load, ~37 live). Embedded, 10 s of 8 clients, three runs each alternating on the loaded 2-core machine:
 * at 40%, RSS right after the load 305–381 → 277–301 MB (median 326 → 297), once quiet 249–260 →
 * 237–243, CPU per order 14.4–16.6 → 14.7–17.4 ms (median 14.6 → 14.7) against V8's own factor.
 * At 20% against 40%, with PGlite's smaller shared memory (packages/data), eight runs each alternating
 * (either first), the machine loaded (load average 2–10): RSS right after the load 230–250 → 215–244 MB
 * (median 240 → 221), once quiet 195–205 → 185–197 (median 198 → 188); old space right after the load
 * 54–62 → 45–51 MB, except at 100 orders/s (58: V8 marks while the load allocates). The cost, from
 * `--trace-gc`: twice the full collections during the load (4 → 8 in 10 s at 61–65 orders/s), CPU per
 * order 10.8 → 11.6 ms in that pair. CPU per order over all pairs followed the machine more than the
 * flag (10.8–25.0 ms at 14–88 orders/s against 10.2–27.5 at 17–100). 10% kept no less (old space 46).
 * The distributed processes grow by half (above), not by a fifth: a factor of 1.4 there
 * (`--max-old-space-size=512`, see above) cost ~2 ms of CPU an order. Not here either: 4 MB semi-spaces
 * embedded (the young generation 16 → 8 MB right after the load, but 22–25 orders/s at 16.9–19.4 ms of
 * CPU against 46 at 12.7 between them).
 */
export const SIMPLEBANK_EMBEDDED_NODE_ARGS: readonly string[] = [
  '--max-semi-space-size=8',
  '--heap-growing-percent=20',
];

/**
 * glibc's malloc settings. It gives each thread that allocates an arena of its own (up to 8 a core) —
 * V8's compiler and GC threads, libuv's pool — and, once a large block is freed, raises its thresholds
 * (up to 32 MB mmap'd, 64 MB trimmed) so that what a burst of compiling and collecting freed stays
 * resident. Two arenas, and the thresholds held at their defaults of 128 kB (setting the trim threshold
 * stops glibc from raising either). Measured on the embedded bank after 15 s of 8 clients (loaded
 * 2-core machine): the memory outside V8's heap and PGlite's WebAssembly memory 194–234 → 136–160 MB;
 * two arenas alone did not change it (200–234). CPU per order, the machine quieter: 29.9–33.5 ms at
 * 30–32 completed orders/s against 31.7 at 27 without them.
 */
export const SIMPLEBANK_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_TRIM_THRESHOLD_: '131072',
};

/**
 * Node's compile cache (`NODE_COMPILE_CACHE`, in Node's own default folder): what a module compiled to,
 * kept on disk and used by the next start of the same source. SimpleBank runs its TypeScript as it is,
 * and Node strips the types with a WebAssembly build of swc (amaro) that it loads for the first `.ts`
 * module and keeps: importing one `.ts` file takes a bare Node from 45 to 64 MB RSS (9 MB of WebAssembly
 * memory, 12 MB of malloc). The cache holds the stripped JavaScript too, so from the second start on
 * nothing loads amaro (a module changed since is stripped again, and cached): in a distributed process
 * after a load, external memory 11–16 → 4–8 MB and the binary's resident pages 59 → 53–55 MB. Given by
 * the launcher and by `withProcessSettings`; a `NODE_COMPILE_CACHE` or `NODE_DISABLE_COMPILE_CACHE`
 * already in the environment wins. `main.ts` writes the cache once started (a killed process writes none),
 * and the distributed launcher fills it before it starts the processes (`warmCompileCache` in launcher.ts).
 */
export const SIMPLEBANK_COMPILE_CACHE_ENV: Readonly<Record<string, string>> = {
  NODE_COMPILE_CACHE: join(tmpdir(), 'node-compile-cache'),
};

/**
 * jemalloc instead of glibc's malloc, when the system has it (Debian and Ubuntu: `libjemalloc2`): glibc
 * keeps what a burst of compiling (PGlite's WebAssembly tiering up, V8's optimizing compiler) and of
 * buffers freed in the middle of its arenas, and only a `malloc_trim` Node cannot call gives it back;
 * jemalloc returns freed pages a second after they are freed (`dirty_decay_ms`, on its background thread).
 * Embedded, 10 s of 8 clients on the loaded 2-core machine, with the flags above, glibc and jemalloc
 * runs alternating (five and four): the memory outside V8's heap, PGlite's WebAssembly memory and the
 * binary 85–121 → 64–82 MB right after the load, 85–115 → 54–57 once quiet; RSS right after the load
 * 265–302 → 244–259 MB (medians 297 → 254), once quiet 223–254 → 197–198; CPU per order 14.7–18.0 →
 * 14.9–15.6 ms. Distributed, 16 clients, three runs each alternating: 145–164 → 140–148 MB a process on
 * average, the largest 156–188 → 148–156 MB; CPU per order 16.4–18.3 → 16.6–18.1 ms. Nothing is added
 * where the library is missing, or when the environment has an `LD_PRELOAD` of its own; a `MALLOC_CONF`
 * given wins. Tried and not kept (embedded, one or two runs each on the loaded machine, nothing seen
 * beside the noise): `dirty_decay_ms:0` (217 MB after the load, twice, against 217–218 without),
 * `narenas:1,tcache_max:4096`, and Node's `--v8-pool-size=2` (fewer V8 helper threads).
 */
const JEMALLOC = [
  '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
  '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
  '/usr/lib64/libjemalloc.so.2',
  '/usr/lib/libjemalloc.so.2',
];

/**
 * How long jemalloc keeps freed pages before it gives them back, by topology. A process of the
 * distributed bank frees and allocates buffers all the time (socket reads, pg's and NATS's messages):
 * at 1 s, pages given back were soon touched again — perf of the six processes under load at 16 clients:
 * page faults and `madvise` (its background thread's purging, `jemalloc_bg_thd`) ~3.9% of their CPU.
 * At 10 s, counted over 15 s of the measured round (`perf stat`, one run each on the loaded 2-core
 * machine): page faults 33 → 17 an order, `madvise` 3.2 → 0.9, resident memory right after the load
 * unchanged (118–132 MB a process, the edge 140–143, in two runs each). The embedded bank keeps 1 s: its
 * RSS once quiet is a goal of its own, and what it frees after a load is mostly PGlite's.
 */
const DIRTY_DECAY_MS = { embedded: 1000, distributed: 10_000 } as const;

/** The environment that preloads jemalloc with our settings, or nothing (see above). */
export function simplebankAllocatorEnv(
  env: NodeJS.ProcessEnv = process.env,
  topology: keyof typeof DIRTY_DECAY_MS = 'embedded',
): Record<string, string> {
  if (process.platform !== 'linux' || env.LD_PRELOAD !== undefined) return {};
  const library = JEMALLOC.find((path) => existsSync(path));
  if (!library) return {};
  return {
    LD_PRELOAD: library,
    MALLOC_CONF:
      env.MALLOC_CONF ?? `narenas:2,background_thread:true,dirty_decay_ms:${DIRTY_DECAY_MS[topology]},muzzy_decay_ms:0`,
  };
}

/**
 * Replaces this process (same pid, same stdio: `execve`) with one that runs the same script with the
 * settings above, the flags where they are missing, on Linux; returns if the environment has any of
 * the malloc settings already, elsewhere, or if Node cannot `execve` (before 22.15). Costs one more
 * start of Node (~50 ms) before anything is loaded. Called first thing in `main.ts`, before any work is done.
 */
export function withProcessSettings(): void {
  if (process.platform !== 'linux' || typeof process.execve !== 'function') return;
  // The environment marks the second start, and a malloc setting given by whoever started the process
  // means they chose their own: then nothing is added, not even flags they may have left out on purpose.
  if (Object.keys(SIMPLEBANK_MALLOC_ENV).some((name) => process.env[name] !== undefined)) return;
  const given = new Set(process.execArgv.map((arg) => arg.split('=')[0]));
  // The transport says the topology: the memory transport (the default) is the embedded bank.
  const embedded = (process.env.CHASSIS_TRANSPORT ?? 'memory') === 'memory';
  const wanted = embedded ? SIMPLEBANK_EMBEDDED_NODE_ARGS : SIMPLEBANK_NODE_ARGS;
  const missingArgs = wanted.filter((arg) => !given.has(arg.split('=')[0]));
  process.execve(process.execPath, [process.execPath, ...missingArgs, ...process.execArgv, ...process.argv.slice(1)], {
    ...SIMPLEBANK_COMPILE_CACHE_ENV,
    ...process.env,
    ...SIMPLEBANK_MALLOC_ENV,
    ...simplebankAllocatorEnv(process.env, embedded ? 'embedded' : 'distributed'),
  });
}
