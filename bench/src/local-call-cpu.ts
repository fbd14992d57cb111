import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector';
import { createNode, MemoryBroker, memoryTransport } from '@chassis/core';
import { getPrice, marketData } from './market-data-service.ts';

/**
 * CPU per local call, as the gateway makes it (`node.call` from outside any handler, a deadline and a
 * correlation id, the memory transport's own broker), with `LOCAL_CONCURRENCY` calls in flight at once:
 * each of that many workers calls again as soon as its call answers. Prints CPU µs (user + system, this
 * process) per call for each concurrency, in rounds that alternate.
 *
 *   node bench/src/local-call-cpu.ts            # concurrency 1 and 32, 3 rounds of 200 000 calls
 *   LOCAL_CONCURRENCY=32 LOCAL_CALLS=500000 node bench/src/local-call-cpu.ts
 */

const CONCURRENCIES = (process.env.LOCAL_CONCURRENCY ?? '1,32').split(',').map(Number);
const CALLS = Number(process.env.LOCAL_CALLS ?? 200_000);
const ROUNDS = Number(process.env.LOCAL_ROUNDS ?? 3);
/** As the gateway's default deadline. */
const TIMEOUT_MS = 30_000;

const node = createNode({
  services: [marketData],
  transport: memoryTransport({ broker: new MemoryBroker() }),
  logLevel: 'silent',
});
await node.start();

let requestIds = 0;
const callOnce = () =>
  node.call(getPrice, { symbol: 'BHP' }, { deadline: Date.now() + TIMEOUT_MS, correlationId: `r${++requestIds}` });

async function run(concurrency: number, calls: number): Promise<{ cpuUs: number; wallUs: number }> {
  let left = calls;
  const worker = async () => {
    while (left > 0) {
      left--;
      await callOnce();
    }
  };
  const cpu = process.cpuUsage();
  const wall = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const used = process.cpuUsage(cpu);
  return { cpuUs: (used.user + used.system) / calls, wallUs: ((performance.now() - wall) * 1000) / calls };
}

for (const concurrency of CONCURRENCIES) await run(concurrency, Math.min(CALLS, 50_000));
// `LOCAL_HEAP_PROFILE=file.heapprofile`: what the measured calls allocate, collected objects included.
const heapProfile = process.env.LOCAL_HEAP_PROFILE;
const session = heapProfile ? new Session() : undefined;
if (session) {
  session.connect();
  await post(session, 'HeapProfiler.startSampling', {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
}
const results = new Map<number, number[]>(CONCURRENCIES.map((c) => [c, []]));
for (let round = 1; round <= ROUNDS; round++) {
  for (const concurrency of CONCURRENCIES) {
    const { cpuUs, wallUs } = await run(concurrency, CALLS);
    results.get(concurrency)!.push(cpuUs);
    console.log(`round ${round} ×${concurrency}: ${cpuUs.toFixed(2)} µs CPU a call, ${wallUs.toFixed(2)} µs wall`);
  }
}
for (const [concurrency, cpu] of results) {
  console.log(
    `×${concurrency}: best ${Math.min(...cpu).toFixed(2)} µs CPU a call (${cpu.map((c) => c.toFixed(2)).join(', ')})`,
  );
}
if (session && heapProfile) {
  const { profile } = (await post(session, 'HeapProfiler.stopSampling', {})) as { profile: unknown };
  await writeFile(heapProfile, JSON.stringify(profile));
  console.log(`heap profile of ${ROUNDS * CALLS * CONCURRENCIES.length} calls written to ${heapProfile}`);
}
await node.stop();

function post(on: Session, method: string, params: object): Promise<unknown> {
  return new Promise((resolve, reject) =>
    on.post(method, params, (error, result) => (error ? reject(error) : resolve(result))),
  );
}
