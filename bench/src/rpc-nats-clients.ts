import { action, createNode, defineService, handle } from '@chassis/core';
import { natsTransport } from '@chassis/core/nats';
import * as v3 from '@nats-io/transport-node';
import Moleculer from 'moleculer';
import * as v2 from 'nats';
import { cycleRatios, formatSpread, rotated, runSlice, spread } from './paired.ts';
import { sellOrder, sellOrderSchema } from './sell-order.ts';

/**
 * The NATS clients under the RPC contenders, side by side in one process and one slice runner
 * (`runSlice`, the order rotating every cycle), one call at a time by default: nats.js 2.x (Moleculer's
 * and `rpc-nats`'s raw floor) against nats.js 3 (`@nats-io/transport-node`, Chassis's), each both ways —
 * `nc.request` (a timer and a promise per request, its own reply mux) and a hand-written mux (a publish
 * with a reply subject on one `<inbox>.*` subscription, as Moleculer and Chassis do) — then bare Moleculer
 * and Chassis as `rpc-nats` runs them. Every server parses and re-encodes the JSON. It prints each one's
 * CPU per call (the process's, client and server together), throughput and p50, medians over the cycles,
 * and its throughput over the first contender's, cycle by cycle. For finding where a round trip's CPU
 * goes, not a goal: `rpc-nats` is the benchmark.
 *
 *   node src/rpc-nats-clients.ts
 *
 * `ONLY` (e.g. `v3-mux,chassis`: which, in which order), `SLICES` (30 cycles), `SLICE_MS` (300),
 * `CONCURRENCY` (1), `CHASSIS_OPTIONS` (JSON, added to both Chassis nodes), `BENCH_NATS_URL`.
 */

const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const SLICE_MS = Number(process.env.SLICE_MS ?? 300);
const SLICES = Number(process.env.SLICES ?? 30);
const WARM_CYCLES = 3;
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 1);
const ONLY = process.env.ONLY?.split(',');
const suffix = Math.random().toString(36).slice(2, 8);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const echoed = (data: Uint8Array) => encoder.encode(JSON.stringify(JSON.parse(decoder.decode(data))));

/** What both nats.js majors offer that this uses. */
interface Message {
  subject: string;
  data: Uint8Array;
  respond(data: Uint8Array): boolean;
}
interface Connection {
  subscribe(subject: string, options: { queue?: string; callback: (error: unknown, msg: Message) => void }): unknown;
  publish(subject: string, data: Uint8Array, options?: { reply?: string }): void;
  request(subject: string, data: Uint8Array, options: { timeout: number }): Promise<Message>;
  flush(): Promise<void>;
}
interface Client {
  connect(options: { servers: string; noAsyncTraces?: boolean }): Promise<Connection>;
  createInbox(): string;
}

interface Contender {
  name: string;
  call: () => Promise<unknown>;
  cpuUsPerCall: number[];
  opsPerSec: number[];
  p50Us: number[];
}

const contender = (name: string, call: () => Promise<unknown>): Contender => ({
  name,
  call,
  cpuUsPerCall: [],
  opsPerSec: [],
  p50Us: [],
});

async function echoServer(client: Client, subject: string): Promise<void> {
  const server = await client.connect({ servers: NATS_URL });
  server.subscribe(subject, { queue: 'echo', callback: (_error, msg) => msg.respond(echoed(msg.data)) });
  await server.flush();
}

async function withRequest(name: string, client: Client): Promise<Contender> {
  const subject = `bench.clients.${name}.${suffix}`;
  await echoServer(client, subject);
  const nc = await client.connect({ servers: NATS_URL, noAsyncTraces: true });
  return contender(name, async () => {
    const reply = await nc.request(subject, encoder.encode(JSON.stringify(sellOrder)), { timeout: 5000 });
    return JSON.parse(decoder.decode(reply.data));
  });
}

async function withMux(name: string, client: Client): Promise<Contender> {
  const subject = `bench.clients.${name}.${suffix}`;
  await echoServer(client, subject);
  const nc = await client.connect({ servers: NATS_URL });
  const inbox = client.createInbox();
  const waiting = new Map<string, (data: Uint8Array) => void>();
  let sequence = 0;
  nc.subscribe(`${inbox}.*`, {
    callback: (_error, msg) => {
      const token = msg.subject.slice(inbox.length + 1);
      const resolve = waiting.get(token);
      if (!resolve) return;
      waiting.delete(token);
      resolve(msg.data);
    },
  });
  await nc.flush();
  return contender(
    name,
    () =>
      new Promise((resolve) => {
        const token = (++sequence).toString(36);
        waiting.set(token, (data) => resolve(JSON.parse(decoder.decode(data))));
        nc.publish(subject, encoder.encode(JSON.stringify(sellOrder)), { reply: `${inbox}.${token}` });
      }),
  );
}

async function moleculer(): Promise<Contender> {
  const options: Moleculer.BrokerOptions = {
    namespace: `bench-clients-${suffix}`,
    transporter: { type: 'NATS', options: { url: NATS_URL } },
    serializer: 'JSON',
    logger: false,
    validator: false,
    metrics: false,
    tracing: false,
    requestTimeout: 5000,
  };
  const server = new Moleculer.ServiceBroker({ ...options, nodeID: `bench-clients-server-${suffix}` });
  server.createService({ name: 'echo', actions: { echo: (ctx: Moleculer.Context<unknown>) => ctx.params } });
  const client = new Moleculer.ServiceBroker({ ...options, nodeID: `bench-clients-client-${suffix}` });
  await server.start();
  await client.start();
  await client.waitForServices('echo', 10_000);
  return contender('moleculer', () => client.call('echo.echo', sellOrder));
}

async function chassis(): Promise<Contender> {
  const extra = JSON.parse(process.env.CHASSIS_OPTIONS ?? '{}') as Record<string, unknown>;
  const service = `bench-clients-echo-${suffix}`;
  const echo = action(`${service}.echo`, { input: sellOrderSchema, output: sellOrderSchema, idempotent: true });
  const server = createNode({
    services: [defineService({ name: service, actions: [handle(echo, (input) => input)] })],
    transport: natsTransport({ url: NATS_URL }),
    logLevel: 'silent',
    ...extra,
  });
  const client = createNode({
    services: [],
    transport: natsTransport({ url: NATS_URL }),
    logLevel: 'silent',
    ...extra,
  });
  await server.start();
  await client.start();
  return contender('chassis', () => client.call(echo, sellOrder));
}

const starts: Record<string, () => Promise<Contender>> = {
  'v2-request': () => withRequest('v2-request', v2 as unknown as Client),
  'v3-request': () => withRequest('v3-request', v3 as unknown as Client),
  'v2-mux': () => withMux('v2-mux', v2 as unknown as Client),
  'v3-mux': () => withMux('v3-mux', v3 as unknown as Client),
  moleculer,
  chassis,
};
const contenders: Contender[] = [];
for (const name of ONLY ?? Object.keys(starts)) {
  const start = starts[name];
  if (!start) throw new TypeError(`ONLY names ${name}; there are ${Object.keys(starts).join(', ')}`);
  contenders.push(await start());
}
console.log(
  `rpc-nats-clients: ${contenders.map((c) => c.name).join(', ')} at concurrency ${CONCURRENCY}, ` +
    `${WARM_CYCLES} cycles of warm-up, then ${SLICES} of ${SLICE_MS} ms slices; ${NATS_URL}`,
);
for (let cycle = -WARM_CYCLES; cycle < SLICES; cycle++) {
  for (const c of rotated(contenders, Math.max(cycle, 0))) {
    const slice = await runSlice(c.call, CONCURRENCY, { sliceMs: SLICE_MS });
    if (cycle < 0) continue;
    c.cpuUsPerCall.push(slice.cpuUsPerCall);
    c.opsPerSec.push(slice.calls / slice.seconds);
    const sorted = slice.latenciesNs.sorted();
    if (sorted.length > 0) c.p50Us.push(sorted[Math.floor(sorted.length / 2)]! / 1000);
  }
}
const first = contenders[0]!;
for (const c of contenders) {
  console.log(
    `${c.name.padEnd(10)}  CPU ${spread(c.cpuUsPerCall).median.toFixed(1).padStart(6)} µs a call  ` +
      `${spread(c.opsPerSec).median.toFixed(0).padStart(6)} calls/s  p50 ${spread(c.p50Us).median.toFixed(0).padStart(4)} µs  ` +
      `calls/s ÷ ${first.name}'s ${formatSpread(spread(cycleRatios(c.opsPerSec, first.opsPerSec)), 3)}  ` +
      `CPU ÷ ${first.name}'s ${formatSpread(spread(cycleRatios(c.cpuUsPerCall, first.cpuUsPerCall)), 3)}`,
  );
}
process.exit(0);
