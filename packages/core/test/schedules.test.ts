import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  action,
  ChassisError,
  type ChassisNode,
  type Context,
  createLogger,
  createNode,
  defineService,
  every,
  handle,
  MemoryBroker,
  memoryTransport,
  type ScheduleDefinition,
} from '@chassis/core';
import { waitUntil } from '@chassis/testing';
import { z } from 'zod';

const count = action('tally.count', { input: z.object({ by: z.number() }), output: z.object({}), idempotent: false });

/** A node running the `tally` service with these schedules, its log lines kept. */
function tallyNode(schedules: ScheduleDefinition[], broker = new MemoryBroker(), counted: number[] = []) {
  const lines: Record<string, unknown>[] = [];
  const service = defineService({
    name: 'tally',
    schedules,
    actions: [
      handle(count, ({ by }) => {
        counted.push(by);
        return {};
      }),
    ],
  });
  const node = createNode({
    services: [service],
    transport: memoryTransport({ broker }),
    logger: createLogger({
      nodeId: 'tally',
      level: 'info',
      destination: { write: (line) => lines.push(JSON.parse(line)) },
    }),
  });
  return { node, lines, counted };
}

/** A histogram's sample count for one outcome of a schedule, from the node's /metrics text. */
async function runsRecorded(node: ChassisNode, schedule: string, outcome: string): Promise<number> {
  const text = await node.metrics.registry.metrics();
  const line = new RegExp(
    `^chassis_schedule_duration_seconds_count\\{service="tally",schedule="${schedule}",outcome="${outcome}"\\} (\\d+)$`,
    'm',
  ).exec(text);
  return Number(line?.[1] ?? 0);
}

describe('scheduled work: every(name, ms, run)', () => {
  const nodes: ChassisNode[] = [];
  afterEach(async () => {
    await Promise.allSettled(nodes.splice(0).map((node) => node.stop()));
  });
  const started = async (bank: ReturnType<typeof tallyNode>) => {
    nodes.push(bank.node);
    await bank.node.start();
    return bank;
  };

  it('runs on its interval with a handler context: a deadline, the service, calls; each run timed', async () => {
    const seen: { service: string; deadline: number; at: number }[] = [];
    const { node, counted } = await started(
      tallyNode([
        every('tick', 40, async (ctx: Context) => {
          seen.push({ service: ctx.service, deadline: ctx.deadline, at: Date.now() });
          await ctx.call(count, { by: 1 });
        }),
      ]),
    );
    await waitUntil(() => seen.length >= 3, { what: 'three runs' });
    assert.ok(seen.every((run) => run.service === 'tally'));
    // A run's deadline is its timeout, by default the interval but at least 1 s.
    assert.ok(seen.every((run) => run.deadline >= run.at + 900 && run.deadline <= run.at + 1000));
    assert.ok(counted.length >= 3, 'ctx.call reached the action');
    assert.ok((await runsRecorded(node, 'tick', 'ok')) >= 3);
  });

  it('a failing run is logged and counted by its error code, and the next one comes anyway', async () => {
    let runs = 0;
    const { node, lines } = await started(
      tallyNode([
        every('flaky', 30, () => {
          runs++;
          if (runs === 1) throw new ChassisError('UNAVAILABLE', 'the exchange is down');
        }),
      ]),
    );
    await waitUntil(() => runs >= 3, { what: 'runs after the failure' });
    assert.equal(await runsRecorded(node, 'flaky', 'UNAVAILABLE'), 1);
    assert.ok((await runsRecorded(node, 'flaky', 'ok')) >= 2);
    const failure = lines.find((line) => line.schedule === 'flaky' && line.level === 'warn');
    assert.match(String(failure?.msg), /scheduled tally\.flaky failed; it runs again in 30 ms/);
  });

  it('runs of one schedule never overlap: one that overruns its interval delays the next', async () => {
    let running = 0;
    let most = 0;
    const starts: number[] = [];
    await started(
      tallyNode([
        every('slow', 20, async () => {
          starts.push(Date.now());
          running++;
          most = Math.max(most, running);
          await sleep(80);
          running--;
        }),
      ]),
    );
    await waitUntil(() => starts.length >= 3, { what: 'three slow runs' });
    assert.equal(most, 1);
    for (let i = 1; i < starts.length; i++) assert.ok(starts[i]! - starts[i - 1]! >= 75, 'the next began after');
  });

  it('a stopping node finishes the run in flight and starts no other', async () => {
    let runs = 0;
    let finished = 0;
    const { node } = await started(
      tallyNode([
        every('long', 20, async () => {
          runs++;
          await sleep(150);
          finished++;
        }),
      ]),
    );
    await waitUntil(() => runs === 1, { what: 'the first run' });
    await node.stop();
    assert.equal(finished, 1, 'the run in flight finished before stop returned');
    const after = runs;
    await sleep(100);
    assert.equal(runs, after, 'no run after stop');
  });

  it('without an extension keeping leases, every instance runs a cluster schedule, and the node says so', async () => {
    const broker = new MemoryBroker();
    const ran = new Set<string>();
    const schedule = every('everywhere', 20, (ctx: Context) => {
      ran.add(ctx.nodeId);
    });
    const first = await started(tallyNode([schedule], broker));
    await started(tallyNode([schedule], broker));
    await waitUntil(() => ran.size === 2, { what: 'both nodes to run it' });
    assert.ok(first.lines.some((line) => /every instance of tally runs its cluster schedules/.test(String(line.msg))));
  });

  it('a schedule that is not valid is refused when the service is defined', () => {
    const run = () => {};
    assert.throws(
      () =>
        defineService({
          name: 'tally',
          schedules: [every('Sweep', 1000, run), every('twice', 1000, run), every('twice', 5, run)],
        }),
      (error: Error) =>
        /schedule "Sweep" must be named/.test(error.message) &&
        /two schedules are named "twice"/.test(error.message) &&
        /runs every 5 ms; give at least 10 ms/.test(error.message),
    );
    assert.throws(
      () => defineService({ name: 'tally', schedules: [every('sweep', 1000, run, { timeoutMs: 0 })] }),
      /timeoutMs 0/,
    );
  });
});
