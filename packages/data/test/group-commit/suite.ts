import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChassisNode, defineService, type EventHandlerOptions, event, on } from '@chassis/core';
import { type DataExtension, database, dataExtension, executeLast, sql } from '@chassis/data';
import { type DatabaseTarget, type TransportTarget, useCluster, waitUntil } from '@chassis/testing';
import { z } from 'zod';

const migrations = new URL('../fixtures/migrations/grouped/', import.meta.url);

/** Deliveries published at once; the handler's prefetch, so all of them are in flight together. */
const N = 5;
/** How long the first delivery holds its group open at most, waiting for the others to arrive. */
const GATHER_MS = 5_000;

interface GroupedTables {
  applied: { message_id: string; n: number | null };
  deferred_keys: { k: string };
}

/**
 * Group commit (`on(…, { groupCommit: true })`): deliveries of one subscription in flight together share
 * one transaction and commit once; a delivery that fails — its statement, or the group's COMMIT — rolls
 * the group back and each member runs again alone, so its neighbours are applied exactly once and only
 * it is retried and dead-lettered. Inbox claims and outbox emits go with the group.
 */
export function groupCommitSuite(transport: TransportTarget, db: DatabaseTarget): void {
  const skip = transport.skip || db.skip;
  describe(`group commit of event handlers: ${transport.name}, ${db.name}`, { skip }, () => {
    const cluster = useCluster(transport, { redelivery: { initialDelayMs: 20, maxDelayMs: 50 } });
    after(() => db.cleanup());

    /** `last`: the insert is the member's last statement (`executeLast`). */
    function slice(options: EventHandlerOptions, emits = false, last = false) {
      const suffix = cluster.suffix;
      const changed = event(
        `grouped-${suffix}.changed`,
        z.object({ n: z.number().int(), fault: z.enum(['statement', 'commit']).optional() }),
      );
      const done = event(`grouped-${suffix}.done`, z.object({ n: z.number().int() }));
      const runs: { n: number; attempt: number }[] = [];
      const carried: { n: number; refusal: string }[] = [];
      const held: { node?: ChassisNode } = {};
      const projection = defineService({
        name: `grouped-${suffix}`,
        migrations,
        uses: emits ? [done] : [],
        events: [
          on(
            changed,
            async ({ n, fault }, ctx) => {
              runs.push({ n, attempt: ctx.attempt });
              // The first holds its group open until every delivery is in flight (each then waits its turn).
              if (runs.length === 1) {
                await waitUntil(() => held.node?.metrics.handling.event === N, {
                  what: `${N} deliveries in flight`,
                  timeoutMs: GATHER_MS,
                  intervalMs: 5,
                }).catch(() => undefined);
              }
              if (last) {
                const table = sql.id(`grouped-${suffix}`, 'applied');
                await executeLast(sql`insert into ${table} (message_id, n) values (${ctx.messageId}, ${n})`, ctx);
                // Refused only if the insert carried the COMMIT (the transaction would be over).
                await sql`select 1`
                  .execute(await database(ctx))
                  .catch((error: Error) => void carried.push({ n, refusal: error.message }));
                return;
              }
              const trx = await database<GroupedTables>(ctx);
              // A null breaks `not null`: the statement fails and aborts the transaction it is in.
              await trx
                .insertInto('applied')
                .values({ message_id: ctx.messageId, n: fault === 'statement' ? null : n })
                .execute();
              // A second 'taken' breaks a deferred key: the statement passes, the COMMIT fails.
              if (fault === 'commit') await trx.insertInto('deferred_keys').values({ k: 'taken' }).execute();
              if (emits) await ctx.emit(done, { n });
            },
            { prefetch: N, maxDeliveries: 2, ...options },
          ),
        ],
      });
      const received: number[] = [];
      const listener = defineService({
        name: `grouped-listener-${suffix}`,
        events: [on(done, ({ n }) => void received.push(n))],
      });
      return { changed, projection, listener, runs, received, held, carried };
    }

    async function start(s: ReturnType<typeof slice>): Promise<{ data: DataExtension; node: ChassisNode }> {
      // The relay's poll would be a transaction of its own in the counts: NOTIFY tells it soon enough.
      const data = dataExtension({ url: await db.newDatabase(), relayPollIntervalMs: 60_000 });
      const node = await cluster.startNode([s.projection, s.listener], { extensions: [data] });
      s.held.node = node;
      // What a starting node still does in its database (the relay's first look) is done before counting.
      let commits = -1;
      await waitUntil(
        () => {
          const settled = data.database.usage.commits === commits;
          commits = data.database.usage.commits;
          return settled;
        },
        { what: 'the database to go quiet after the start', intervalMs: 200 },
      );
      return { data, node };
    }

    /** Publishes deliveries of `changed` at once, as a foreign publisher; their ids are `<suffix>-<n>`. */
    async function publishAll(s: ReturnType<typeof slice>, payloads: { n: number; fault?: string }[]) {
      const raw = await cluster.transport();
      await Promise.all(
        payloads.map((payload) =>
          raw.publish(s.changed.name, {
            headers: { id: `${cluster.suffix}-${payload.n}`, type: s.changed.name },
            body: Buffer.from(JSON.stringify(payload)),
          }),
        ),
      );
    }

    /** How many times each delivery was applied, by its `n`. */
    async function appliedCounts(data: DataExtension, s: ReturnType<typeof slice>): Promise<Map<number, number>> {
      const { rows } = await sql<{ message_id: string; times: number }>`
        select message_id, count(*)::int as times from ${sql.id(s.projection.name, 'applied')} group by message_id`.execute(
        data.database.kysely,
      );
      return new Map(rows.map((row) => [Number(row.message_id.split('-').at(-1)), row.times]));
    }

    async function deadLetters(node: ChassisNode): Promise<number> {
      const metric = await node.metrics.registry.getSingleMetric('chassis_dead_letters_total')?.get();
      return (metric?.values ?? []).reduce((sum, value) => sum + value.value, 0);
    }

    const ns = Array.from({ length: N }, (_, i) => i + 1);

    it(`[${transport.name}, ${db.name}] ${N} deliveries in flight together commit as one transaction`, async () => {
      const s = slice({ idempotent: true, groupCommit: true });
      const { data } = await start(s);
      const before = data.database.usage.commits;
      await publishAll(
        s,
        ns.map((n) => ({ n })),
      );
      // Not by polling the database: each look would be a transaction in the counts.
      await waitUntil(() => s.runs.length === N, { what: `${N} deliveries handled` });
      // The last member's turn has begun; the group's commit comes after it.
      await sleep(400);
      assert.equal(data.database.usage.commits - before, 1, 'one COMMIT, and no statement outside it');
      assert.deepEqual([...(await appliedCounts(data, s)).values()], Array(N).fill(1));
    });

    it(`[${transport.name}, ${db.name}] executeLast in a group runs as any statement: the group still commits once, after its last member`, async () => {
      const s = slice({ idempotent: true, groupCommit: true }, false, true);
      const { data } = await start(s);
      const before = data.database.usage.commits;
      await publishAll(
        s,
        ns.map((n) => ({ n })),
      );
      await waitUntil(() => s.runs.length === N, { what: `${N} deliveries handled` });
      await sleep(400);
      assert.equal(data.database.usage.commits - before, 1, 'one COMMIT for the group');
      assert.deepEqual(s.carried, [], 'no member carried it: each ran a statement after its last');
      assert.deepEqual([...(await appliedCounts(data, s)).values()], Array(N).fill(1));
    });

    it(`[${transport.name}, ${db.name}] without groupCommit, each delivery is a transaction`, async () => {
      const s = slice({ idempotent: true });
      const { data } = await start(s);
      const before = data.database.usage.commits;
      await publishAll(
        s,
        ns.map((n) => ({ n })),
      );
      await waitUntil(() => data.database.usage.commits - before >= N, { what: `${N} transactions` });
      await sleep(300);
      assert.equal(data.database.usage.commits - before, N);
    });

    for (const fault of ['statement', 'commit'] as const) {
      it(`[${transport.name}, ${db.name}] a delivery whose ${fault} fails in a group: the others are applied once, only it is retried and dead-lettered`, async () => {
        const s = slice({ idempotent: true, groupCommit: true });
        const { data, node } = await start(s);
        const bad = 3;
        await publishAll(
          s,
          ns.map((n) => (n === bad ? { n, fault } : { n })),
        );
        await waitUntil(async () => (await deadLetters(node)) === 1, { what: `delivery ${bad} dead-lettered` });
        await waitUntil(async () => (await appliedCounts(data, s)).size === N - 1, { what: 'the others applied' });
        await sleep(300);
        const applied = await appliedCounts(data, s);
        assert.deepEqual(
          ns.filter((n) => n !== bad).map((n) => applied.get(n)),
          Array(N - 1).fill(1),
          'each good delivery applied exactly once',
        );
        assert.equal(applied.get(bad), undefined, 'the bad one applied never');
        assert.equal(await deadLetters(node), 1, 'only the bad one dead-lettered');
        const badAttempts = s.runs.filter((run) => run.n === bad).map((run) => run.attempt);
        assert.ok(badAttempts.includes(2), `the bad one was redelivered (attempts ${badAttempts})`);
        for (const n of ns.filter((n) => n !== bad)) {
          const attempts = s.runs.filter((run) => run.n === n).map((run) => run.attempt);
          assert.ok(
            attempts.every((attempt) => attempt === 1),
            `delivery ${n} was not redelivered (attempts ${attempts})`,
          );
        }
      });
    }

    it(`[${transport.name}, ${db.name}] with the inbox and the outbox: one claim and one event a delivery, none again on a redelivery`, async () => {
      const s = slice({ groupCommit: true }, true);
      const { data } = await start(s);
      const payloads = ns.map((n) => ({ n }));
      await publishAll(s, payloads);
      await waitUntil(() => s.received.length === N, { what: `${N} events emitted and relayed` });
      const inbox = async () =>
        (
          await sql<{
            n: number;
          }>`select count(*)::int as n from ${sql.id(s.projection.name, 'chassis_inbox')}`.execute(data.database.kysely)
        ).rows[0]!.n;
      assert.equal(await inbox(), N, 'one inbox row a delivery');
      // JetStream drops a message whose id it has seen (Nats-Msg-Id): no duplicate to make that way.
      if (transport.name === 'nats') return;
      // The same messages again, as a broker redelivers after lost acknowledgements: the inbox turns them away.
      await publishAll(s, payloads);
      await waitUntil(() => s.runs.length >= 2 * N, { what: 'the duplicates delivered' });
      await sleep(400);
      assert.deepEqual([...(await appliedCounts(data, s)).values()], Array(N).fill(1), 'each applied once');
      assert.equal(await inbox(), N);
      assert.deepEqual(
        s.received.toSorted((a, b) => a - b),
        ns,
        'each event emitted once',
      );
    });
  });
}
