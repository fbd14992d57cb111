import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChassisNode, type Context, defineService, every } from '@chassis/core';
import { Database, database, dataExtension, sql } from '@chassis/data';
import { type DatabaseTarget, memoryTarget, useCluster, waitUntil } from '@chassis/testing';

const fixtures = new URL('../fixtures/migrations/', import.meta.url);

interface EffectsTables {
  effects: { message_id: string; pid: number };
}

/** One run of the schedule, as the test saw it: which node, when. */
interface Run {
  node: string;
  from: number;
  to: number;
}

/**
 * Cluster schedules with the data kit: one instance at a time runs a schedule (the lease in the
 * service's database), another takes over when the holder stops, and a run's writes are a unit of work.
 */
export function schedulesSuite(target: DatabaseTarget): void {
  describe(`scheduled work with the data kit: ${target.name}`, { skip: target.skip }, () => {
    const cluster = useCluster(memoryTarget());
    const open: Database[] = [];
    after(async () => {
      await Promise.allSettled(open.map((db) => db.close()));
      await target.cleanup();
    });

    /** Two handles on one fresh database: on PostgreSQL two pools, as two nodes have; on PGlite one. */
    async function twoHandles(): Promise<[Database, Database]> {
      const url = await target.newDatabase();
      const first = await Database.open(url);
      open.push(first);
      if (target.name !== 'postgres') return [first, first];
      const second = await Database.open(url);
      open.push(second);
      return [first, second];
    }

    function sweeper(run: (ctx: Context) => Promise<void>, everyMs = 40) {
      return defineService({
        name: `sweeper-${cluster.suffix}`,
        migrations: new URL('effects/', fixtures),
        schedules: [every('sweep', everyMs, run)],
      });
    }

    it(`[${target.name}] one instance at a time runs a cluster schedule; when it stops, another takes over`, async () => {
      const runs: Run[] = [];
      const service = sweeper(async (ctx) => {
        const from = Date.now();
        const db = await database<EffectsTables>(ctx);
        await db.insertInto('effects').values({ message_id: ctx.messageId, pid: process.pid }).execute();
        await sleep(15);
        runs.push({ node: ctx.nodeId, from, to: Date.now() });
      });
      const [one, two] = await twoHandles();
      const nodes: ChassisNode[] = [
        await cluster.startNode([service], {
          nodeId: `a-${cluster.suffix}`,
          extensions: [dataExtension({ database: one })],
        }),
        await cluster.startNode([service], {
          nodeId: `b-${cluster.suffix}`,
          extensions: [dataExtension({ database: two })],
        }),
      ];
      await waitUntil(() => runs.length >= 8, { what: 'eight runs' });
      const holder = runs[0]!.node;
      assert.ok(
        runs.every((run) => run.node === holder),
        `the holder keeps its lease while it runs: ${runs.map((r) => r.node).join(' ')}`,
      );
      // The holder stops (a drain, a crash): its lease lapses and the other node takes the schedule.
      const stopping = nodes.find((node) => node.id === holder)!;
      await stopping.stop();
      const before = runs.length;
      await waitUntil(() => runs.slice(before).some((run) => run.node !== holder), {
        what: 'the other node to take the schedule over',
        timeoutMs: 10_000,
      });
      const sorted = [...runs].sort((a, b) => a.from - b.from);
      for (let i = 1; i < sorted.length; i++) {
        assert.ok(sorted[i]!.from >= sorted[i - 1]!.to, `runs never overlap, across nodes: ${JSON.stringify(sorted)}`);
      }
      // Every run's write committed, once: counted once the other node has drained too, since a run is
      // recorded when its handler returns, before its unit of work commits.
      await nodes.find((node) => node.id !== holder)!.stop();
      const written = await sql<{
        n: number;
      }>`select count(*)::int as n from ${sql.id(service.name, 'effects')}`.execute(one.kysely);
      assert.equal(written.rows[0]!.n, runs.length);
    });

    it(`[${target.name}] a run that fails leaves nothing it wrote; the next run's writes commit`, async () => {
      let attempt = 0;
      const service = sweeper(async (ctx) => {
        attempt++;
        const db = await database<EffectsTables>(ctx);
        await db
          .insertInto('effects')
          .values({ message_id: `run-${attempt}`, pid: process.pid })
          .execute();
        if (attempt === 1) throw new Error('the sweep broke halfway');
      });
      const [db] = await twoHandles();
      await cluster.startNode([service], { extensions: [dataExtension({ database: db })] });
      await waitUntil(() => attempt >= 3, { what: 'three runs' });
      await sleep(50);
      const rows = await sql<{ message_id: string }>`
        select message_id from ${sql.id(service.name, 'effects')} order by seq`.execute(db.kysely);
      const ids = rows.rows.map((row) => row.message_id);
      assert.ok(!ids.includes('run-1'), `the failed run's write was rolled back: ${ids.join(', ')}`);
      assert.deepEqual(ids.slice(0, 2), ['run-2', 'run-3']);
    });
  });
}
