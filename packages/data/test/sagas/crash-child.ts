/**
 * A node running sell-order sagas, for the crash test. It first resumes whatever a previous, killed
 * process left unfinished and waits until nothing is left (the restart); then, given BATCH, it starts
 * a batch of sagas and — given KILL_AT — SIGKILLs itself the first time any saga reaches that boundary.
 *
 * Env: DATABASE_URL, SERVICE, BATCH (ids prefix; none: resume only), SAGAS (per batch), KILL_AT
 * (`<boundary>` or `<boundary>:<step>`), REPORT=1 (print every boundary passed).
 * Lines out: `boundary <label> <sagaId>`, `resumed <n>`, `kill <label> <sagaId>`, `finished`.
 */
import { writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Database, SagaRunner } from '@chassis/data';
import { crashSaga, feeFails, installEffects } from './crash-saga.ts';

const env = process.env;
const service = env.SERVICE!;
const report = env.REPORT === '1';
let armed = false;
// Synchronous: the process may die on the next line.
const say = (line: string) => writeSync(1, `${line}\n`);

const db = await Database.open(env.DATABASE_URL!);
const saga = crashSaga(db, service);
const runner = new SagaRunner(db, {
  service,
  sagas: [saga],
  // A new node id per process: the restart takes over a dead node's instances when their lease lapses.
  leaseMs: 500,
  sweepMs: 100,
  onBoundary(event) {
    const label = event.step ? `${event.boundary}:${event.step}` : event.boundary;
    if (report) say(`boundary ${label} ${event.sagaId}`);
    if (armed && label === env.KILL_AT) {
      say(`kill ${label} ${event.sagaId}`);
      process.kill(process.pid, 'SIGKILL');
    }
  },
});
await runner.install();
await installEffects(db, service);

// What the killed process left unfinished: taken up by resumeAll at once if its lease has lapsed, else
// by the sweep a moment later (a restart can come back within the lease).
const left = await runner.list({ status: ['running', 'compensating'] });
await runner.resumeAll();
for (const until = Date.now() + 20_000; ; ) {
  const unfinished = await runner.list({ status: ['running', 'compensating'] });
  if (unfinished.length === 0) break;
  if (Date.now() > until) throw new Error(`Still unfinished after 20 s: ${unfinished.map((s) => s.id).join(', ')}`);
  await sleep(25);
}
say(`resumed ${left.length}`);

if (env.BATCH) {
  armed = env.KILL_AT !== undefined;
  const count = Number(env.SAGAS ?? 4);
  const ids = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      runner.start(
        saga,
        { accountId: '101', symbol: 'BHP', quantity: 10 + i, failFee: feeFails(i) },
        { id: `${env.BATCH}-${i}` },
      ),
    ),
  );
  for (const id of ids) await runner.wait(id, 20_000);
  say('finished');
}
await runner.stop();
await db.close();
