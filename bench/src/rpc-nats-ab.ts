import { resolve } from 'node:path';
import { cycleRatios, formatSpread, runSlice, spread } from './paired.ts';
import { sellOrder, sellOrderSchema } from './sell-order.ts';

/**
 * Two checkouts of Chassis (old and new) over NATS in one process, called one at a time in alternating
 * slices, each slice's CPU per call measured with `process.cpuUsage`. On a machine shared with other
 * work, the CPU per call of separate runs moves by a third from one run to the next; slices a few hundred
 * milliseconds apart see the same load, so the ratio of each new slice to the old one beside it, taken
 * over many pairs, shows a difference of a few percent that separate runs cannot.
 *
 *   OLD_ROOT=/path/to/old/checkout node src/rpc-nats-ab.ts
 *
 * `NEW_ROOT` defaults to this checkout. `SLICE_MS` (300), `SLICES` (60 pairs measured), `WARM_SLICES`
 * (4 pairs first, not counted) and `CONCURRENCY` (1: calls one after another) set the run; `OLD_OPTIONS` / `NEW_OPTIONS` (JSON) are added to both
 * nodes of a side, to price a feature against the same code without it.
 */

const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const SLICE_MS = Number(process.env.SLICE_MS ?? 300);
const SLICES = Number(process.env.SLICES ?? 60);
const WARM_SLICES = Number(process.env.WARM_SLICES ?? 4);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 1);
const suffix = Math.random().toString(36).slice(2, 8);

type Core = typeof import('@chassis/core');
type Nats = typeof import('@chassis/core/nats');

interface Side {
  name: string;
  call: () => Promise<unknown>;
  stop: () => Promise<void>;
  perCall: number[];
  rates: number[];
}

async function side(name: string, root: string, options: Record<string, unknown>): Promise<Side> {
  const core = (await import(resolve(root, 'packages/core/src/index.ts'))) as Core;
  const { natsTransport } = (await import(resolve(root, 'packages/core/src/transports/nats/index.ts'))) as Nats;
  const service = `bench-ab-${name}-${suffix}`;
  const echo = core.action(`${service}.echo`, { input: sellOrderSchema, output: sellOrderSchema, idempotent: true });
  const server = core.createNode({
    services: [core.defineService({ name: service, actions: [core.handle(echo, (input) => input)] })],
    transport: natsTransport({ url: NATS_URL }),
    logLevel: 'silent',
    ...options,
  });
  const client = core.createNode({
    services: [],
    transport: natsTransport({ url: NATS_URL }),
    logLevel: 'silent',
    ...options,
  });
  await server.start();
  await client.start();
  return {
    name,
    call: () => client.call(echo, sellOrder),
    stop: async () => {
      await client.stop();
      await server.stop();
    },
    perCall: [],
    rates: [],
  };
}

/** `CONCURRENCY` calls in flight for a slice: CPU µs per call, and calls a second. */
async function slice(s: Side): Promise<[number, number]> {
  const { cpuUsPerCall, calls, seconds } = await runSlice(s.call, CONCURRENCY, { sliceMs: SLICE_MS, rampMs: 0 });
  return [cpuUsPerCall, calls / seconds];
}

const oldRoot = process.env.OLD_ROOT;
if (!oldRoot) {
  console.error('Set OLD_ROOT to the checkout to compare with (a worktree of main, say).');
  process.exit(2);
}
const newRoot = process.env.NEW_ROOT ?? resolve(import.meta.dirname, '../..');
const old = await side('old', oldRoot, JSON.parse(process.env.OLD_OPTIONS ?? '{}'));
const next = await side('new', newRoot, JSON.parse(process.env.NEW_OPTIONS ?? '{}'));
console.log(
  `rpc-nats-ab: ${oldRoot} (old) against ${newRoot} (new), ${SLICES} pairs of ${SLICE_MS} ms slices at concurrency ${CONCURRENCY}`,
);
for (let pair = 0; pair < WARM_SLICES + SLICES; pair++) {
  // Each goes first in turn: whatever the first of a pair pays (a timer, a collection) falls on both.
  const order = pair % 2 === 0 ? [old, next] : [next, old];
  const measured: [Side, [number, number]][] = [];
  for (const s of order) measured.push([s, await slice(s)]);
  if (pair < WARM_SLICES) continue;
  for (const [s, [perCall, rate]] of measured) {
    s.perCall.push(perCall);
    s.rates.push(rate);
  }
}
for (const s of [old, next]) {
  console.log(
    `${s.name}: median ${spread(s.perCall).median.toFixed(1)} µs CPU a call, lowest ${Math.min(...s.perCall).toFixed(1)}; ` +
      `median ${Math.round(spread(s.rates).median)} calls/s`,
  );
}
console.log(
  `new/old, slice by slice: CPU a call ${formatSpread(spread(cycleRatios(next.perCall, old.perCall)), 3)}, ` +
    `calls/s ${formatSpread(spread(cycleRatios(next.rates, old.rates)), 3)}, median (quartiles)`,
);
await next.stop();
await old.stop();
