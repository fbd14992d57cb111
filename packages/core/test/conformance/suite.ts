import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ChassisError,
  type Context,
  createLogger,
  defineService,
  handle,
  on,
  type PayloadOf,
  type ServiceDefinition,
} from '@chassis/core';
import { type TransportTarget, useCluster, waitUntil } from '@chassis/testing';
import { type SellOrderSlice, sellOrderSlice } from './sell-order.ts';

/**
 * One conformance suite for every transport: the behaviour the design promises, checked through the
 * public API of nodes (and, for what only a foreign publisher can do, through the transport itself).
 */
type OrderCreated = PayloadOf<SellOrderSlice['orderCreated']>;

const GARBAGE = new Uint8Array([0xff, 0xfe, 0x00, 0x81, 0x7b, 0x22]);

export function transportConformance(target: TransportTarget): void {
  describe(`transport conformance: ${target.name}`, { skip: target.skip }, () => {
    const cluster = useCluster(target, {
      heartbeatIntervalMs: 200,
      redelivery: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    const { startNode } = cluster;
    let slice: SellOrderSlice;
    beforeEach(() => {
      slice = sellOrderSlice(cluster.suffix);
    });

    /** account-transactions: reserves shares (account 101 holds 1000 BHP), echoes, sleeps. */
    function ledgerService(record: { calls: string[]; aborted?: boolean[] } = { calls: [] }): ServiceDefinition {
      const holdings = new Map<string, number>([['101:BHP', 1000]]);
      return defineService({
        name: slice.names.ledger,
        actions: [
          handle(slice.requestReservation, (input, ctx) => {
            record.calls.push(ctx.nodeId);
            const key = `${input.accountId}:${input.symbol}`;
            const free = holdings.get(key) ?? 0;
            if (free < input.quantity) {
              throw slice.InsufficientShares(
                `Account ${input.accountId} has ${free} ${input.symbol} free; ${input.quantity} requested`,
                { free, requested: input.quantity },
              );
            }
            holdings.set(key, free - input.quantity);
            return { reservationId: `r-${input.orderId}`, free: free - input.quantity };
          }),
          handle(slice.echo, (input, ctx) => {
            record.calls.push(ctx.nodeId);
            return { data: input.data, node: ctx.nodeId };
          }),
          handle(slice.slow, async (input, ctx) => {
            record.calls.push(ctx.nodeId);
            try {
              await sleep(input.ms, undefined, { signal: ctx.signal });
            } catch {
              record.aborted?.push(true);
            }
            return { node: ctx.nodeId, deadline: ctx.deadline };
          }),
        ],
      });
    }

    function ordersService(seen: { correlationIds: string[] } = { correlationIds: [] }): ServiceDefinition {
      let next = 0;
      return defineService({
        name: slice.names.orders,
        uses: [slice.requestReservation, slice.orderCreated],
        actions: [
          handle(slice.sellShares, async (input, ctx) => {
            seen.correlationIds.push(ctx.correlationId);
            const orderId = `o-${++next}`;
            await ctx.call(slice.requestReservation, { orderId, ...input });
            await ctx.emit(slice.orderCreated, { orderId, ...input, side: 'sell' });
            return { orderId, status: 'created' as const };
          }),
        ],
      });
    }

    function subscriber(
      name: string,
      handler: (payload: OrderCreated, ctx: Context) => Promise<void> | void,
      options: { maxDeliveries?: number } = {},
    ): ServiceDefinition {
      return defineService({ name, events: [on(slice.orderCreated, handler, options)] });
    }

    function order(orderId: string, note?: string): OrderCreated {
      return { orderId, accountId: '101', symbol: 'BHP', quantity: 1, side: 'sell', ...(note ? { note } : {}) };
    }

    it(`[${target.name}] request/reply: a sell order reserves shares and emits order_created, one correlation id throughout`, async () => {
      const seen = { correlationIds: [] as string[] };
      const created: { orderId: string; correlationId: string; causationId: string | undefined }[] = [];
      await startNode([ledgerService()]);
      await startNode([ordersService(seen)]);
      await startNode([
        subscriber(slice.names.market, (payload, ctx) => {
          created.push({ orderId: payload.orderId, correlationId: ctx.correlationId, causationId: ctx.causationId });
        }),
      ]);
      const caller = await startNode([]);
      const result = await caller.call(
        slice.sellShares,
        { accountId: '101', symbol: 'BHP', quantity: 10 },
        { correlationId: 'req-1' },
      );
      assert.deepEqual(result, { orderId: 'o-1', status: 'created' });
      await waitUntil(() => created.length === 1, { what: 'order_created to reach market' });
      assert.equal(created[0]?.orderId, 'o-1');
      assert.equal(created[0]?.correlationId, 'req-1');
      assert.ok(created[0]?.causationId, 'the event names the message that caused it');
      assert.deepEqual(seen.correlationIds, ['req-1']);
    });

    it(`[${target.name}] typed errors cross the wire with code, message, status, data and retryable kept`, async () => {
      await startNode([ledgerService()]);
      await startNode([ordersService()]);
      const caller = await startNode([]);
      const error = await caller.call(slice.sellShares, { accountId: '101', symbol: 'BHP', quantity: 5000 }).then(
        () => assert.fail('selling more than is held must fail'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ChassisError);
      assert.equal(error.code, 'INSUFFICIENT_SHARES');
      assert.equal(error.status, 409);
      assert.equal(error.retryable, false);
      assert.match(error.message, /has 1000 BHP free; 5000 requested/);
      assert.deepEqual(error.data, { free: 1000, requested: 5000 });
    });

    it(`[${target.name}] input that fails the contract gets a validation error naming the fields; the handler never runs`, async () => {
      const record = { calls: [] as string[] };
      await startNode([ledgerService(record)]);
      const caller = await startNode([]);
      const error = await caller
        .call(slice.requestReservation, { orderId: 'o-1', accountId: 'abc', symbol: 'bhp', quantity: -3 })
        .then(
          () => assert.fail('invalid input must be refused'),
          (e: unknown) => e,
        );
      assert.ok(error instanceof ChassisError);
      assert.equal(error.code, 'VALIDATION');
      assert.equal(error.status, 400);
      const fields = (error.data as { fields: { path: string }[] }).fields.map((f) => f.path).sort();
      assert.deepEqual(fields, ['accountId', 'quantity', 'symbol']);
      assert.deepEqual(record.calls, []);
    });

    it(`[${target.name}] an action the service does not serve gets UNKNOWN_ACTION naming what it serves`, async () => {
      await startNode([ledgerService()]);
      const caller = await startNode([]);
      const error = await caller.call(slice.closeAccount, { accountId: '101' }).then(
        () => assert.fail('unknown action must fail'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ChassisError);
      assert.equal(error.code, 'UNKNOWN_ACTION');
      assert.match(error.message, /requestReservation/);
      assert.deepEqual(error.data, {
        service: slice.names.ledger,
        action: 'closeAccount',
        actions: ['requestReservation', 'echo', 'slow'],
      });
    });

    it(`[${target.name}] a call to a service nobody runs fails fast with NO_SERVICE`, async () => {
      const caller = await startNode([]);
      const started = Date.now();
      const error = await caller.call(slice.quote, { symbol: 'BHP' }, { timeoutMs: 60_000 }).then(
        () => assert.fail('no service must fail'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ChassisError);
      assert.equal(error.code, 'NO_SERVICE');
      assert.equal(error.retryable, true);
      assert.deepEqual(error.data, { service: slice.quote.service, action: 'quote' });
      assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms; it should not wait for the timeout`);
    });

    it(`[${target.name}] a call times out at its deadline and the handler's abort signal fires`, async () => {
      const record = { calls: [] as string[], aborted: [] as boolean[] };
      await startNode([ledgerService(record)]);
      const caller = await startNode([]);
      const started = Date.now();
      const error = await caller.call(slice.slow, { ms: 20_000 }, { timeoutMs: 300 }).then(
        () => assert.fail('must time out'),
        (e: unknown) => e,
      );
      const elapsed = Date.now() - started;
      assert.ok(error instanceof ChassisError);
      assert.equal(error.code, 'TIMEOUT');
      assert.ok(elapsed >= 280 && elapsed < 10_000, `timed out after ${elapsed} ms, expected about 300`);
      // The time the attempt had left, which the call's own work before sending may have shortened.
      const { timeoutMs, ...rest } = error.data as { timeoutMs: number };
      assert.deepEqual(rest, { service: slice.names.ledger, action: 'slow' });
      assert.ok(timeoutMs > 0 && timeoutMs <= 300, `data.timeoutMs is ${timeoutMs}: ${error.message}`);
      await waitUntil(() => record.aborted.length === 1, { timeoutMs: 10_000, what: 'the abort signal' });
    });

    it(`[${target.name}] a request cut off by its transport closing, and one sent after, fail with TRANSPORT and no data`, async () => {
      const record = { calls: [] as string[] };
      await startNode([ledgerService(record)]);
      const raw = await cluster.transport();
      const slow = () =>
        raw.request(
          slice.names.ledger,
          'slow',
          {
            headers: { 'content-type': 'application/json', 'timeout-ms': '10000', id: `cut-${record.calls.length}` },
            body: new TextEncoder().encode(JSON.stringify({ ms: 2000 })),
          },
          { timeoutMs: 10_000 },
        );
      const waiting = slow().then(
        () => assert.fail('the reply cannot arrive on a closed transport'),
        (e: unknown) => e,
      );
      await waitUntil(() => record.calls.length === 1, { what: 'the request to reach the handler' });
      await raw.close();
      // Some transports refuse at once, others in the promise: the caller sees a rejection either way.
      const after = await Promise.resolve()
        .then(slow)
        .then(
          () => assert.fail('a closed transport sends nothing'),
          (e: unknown) => e,
        );
      for (const error of [await waiting, after]) {
        assert.ok(error instanceof ChassisError);
        assert.deepEqual(
          { code: error.code, retryable: error.retryable, data: error.data },
          { code: 'TRANSPORT', retryable: true, data: undefined },
          error.message,
        );
      }
    });

    it(`[${target.name}] the remaining deadline, not a fresh timeout, travels on to the next call`, async () => {
      let outerDeadline = 0;
      const innerDeadlines: number[] = [];
      await startNode([
        defineService({
          name: slice.names.orders,
          actions: [
            handle(slice.sellShares, async (_input, ctx) => {
              outerDeadline = ctx.deadline;
              const inner = await ctx.call(slice.slow, { ms: 1 });
              innerDeadlines.push(inner.deadline);
              return { orderId: 'o-1', status: 'created' as const };
            }),
          ],
        }),
      ]);
      await startNode([ledgerService()]);
      const caller = await startNode([]);
      await caller.call(slice.sellShares, { accountId: '101', symbol: 'BHP', quantity: 1 }, { timeoutMs: 1500 });
      assert.ok(outerDeadline > Date.now() - 5000);
      // The time left travels (timeout-ms) and the callee counts it from when it got the request, so its
      // deadline is the caller's plus the transit time — never earlier, and nowhere near the fresh 5 s.
      assert.equal(innerDeadlines.length, 1);
      const later = innerDeadlines[0]! - outerDeadline;
      assert.ok(later >= 0 && later < 2000, `the callee's deadline is ${later} ms after the caller's`);
    });

    it(`[${target.name}] a request's timeout-ms counts from its arrival on the receiver's clock, whatever its deadline header says`, async () => {
      await startNode([ledgerService()]);
      const raw = await cluster.transport();
      const request = (headers: Record<string, string>) =>
        raw.request(
          slice.names.ledger,
          'slow',
          {
            headers: { 'content-type': 'application/json', ...headers },
            body: new TextEncoder().encode(JSON.stringify({ ms: 1 })),
          },
          { timeoutMs: 10_000 },
        );
      const before = Date.now();
      // An absolute deadline long past, as a sender whose clock runs 60 s behind would write it (a node
      // that writes both): timeout-ms decides.
      const reply = await request({ id: 'skew-1', 'timeout-ms': '60000', deadline: String(before - 60_000) });
      const after = Date.now();
      assert.equal(reply.headers.status, undefined, new TextDecoder().decode(reply.body));
      const { deadline } = JSON.parse(new TextDecoder().decode(reply.body)) as { deadline: number };
      assert.ok(
        deadline >= before + 60_000 && deadline <= after + 60_000,
        `deadline ${deadline - before} ms after sending; expected 60000 from arrival`,
      );
      // A request from a node that predates timeout-ms: its absolute deadline is still read.
      const legacy = await request({ id: 'skew-2', deadline: String(before + 45_000) });
      assert.equal(JSON.parse(new TextDecoder().decode(legacy.body)).deadline, before + 45_000);
    });

    it(`[${target.name}] a request whose deadline has already passed is not run`, async () => {
      const record = { calls: [] as string[] };
      await startNode([ledgerService(record)]);
      const raw = await cluster.transport();
      const reply = await raw.request(
        slice.names.ledger,
        'echo',
        {
          headers: { 'content-type': 'application/json', deadline: String(Date.now() - 1000), id: 'late-1' },
          body: new TextEncoder().encode(JSON.stringify({ data: 'late' })),
        },
        { timeoutMs: 2000 },
      );
      assert.equal(reply.headers.status, 'error');
      assert.equal(JSON.parse(new TextDecoder().decode(reply.body)).code, 'TIMEOUT');
      // …and one with no time left on arrival.
      const spent = await raw.request(
        slice.names.ledger,
        'echo',
        {
          headers: { 'content-type': 'application/json', 'timeout-ms': '0', id: 'late-2' },
          body: new TextEncoder().encode(JSON.stringify({ data: 'late' })),
        },
        { timeoutMs: 2000 },
      );
      assert.equal(spent.headers.status, 'error');
      assert.equal(JSON.parse(new TextDecoder().decode(spent.body)).code, 'TIMEOUT');
      assert.deepEqual(record.calls, []);
    });

    it(`[${target.name}] instances of one service compete for calls and for events`, async () => {
      const record = { calls: [] as string[] };
      const handledBy: string[] = [];
      const market = () =>
        subscriber(slice.names.market, async (_payload, ctx) => {
          await sleep(5);
          handledBy.push(ctx.nodeId);
        });
      const a = await startNode([ledgerService(record), market()]);
      const b = await startNode([ledgerService(record), market()]);
      const caller = await startNode([]);
      await Promise.all(Array.from({ length: 40 }, (_, i) => caller.call(slice.slow, { ms: 10 + (i % 3) })));
      for (let i = 0; i < 40; i++) await caller.emit(slice.orderCreated, order(`o-${i}`));
      await waitUntil(() => handledBy.length === 40, { what: '40 events handled' });
      await sleep(200);
      assert.equal(handledBy.length, 40, 'each event is handled by one instance only');
      for (const node of [a, b]) {
        assert.ok(record.calls.includes(node.id), `instance ${node.id} served no call`);
        assert.ok(handledBy.includes(node.id), `instance ${node.id} handled no event`);
      }
    });

    it(`[${target.name}] every subscribing service gets its own copy of an event`, async () => {
      const market: string[] = [];
      const notifications: string[] = [];
      await startNode([subscriber(slice.names.market, (p) => void market.push(p.orderId))]);
      await startNode([subscriber(slice.names.notifications, (p) => void notifications.push(p.orderId))]);
      const caller = await startNode([]);
      for (let i = 0; i < 10; i++) await caller.emit(slice.orderCreated, order(`o-${i}`));
      await waitUntil(() => market.length === 10 && notifications.length === 10, { what: 'both copies' });
      assert.deepEqual([...market].sort(), [...notifications].sort());
    });

    it(`[${target.name}] a subscription's backlog counts the events waiting while no instance runs, and the node reports it`, async () => {
      const handled: string[] = [];
      const market = subscriber(slice.names.market, (p) => void handled.push(p.orderId));
      const binding = { event: slice.orderCreated.name, service: market.name, handler: market.events[0]!.name };
      const first = await startNode([market]);
      await first.stop();
      const caller = await startNode([]);
      for (let i = 0; i < 5; i++) await caller.emit(slice.orderCreated, order(`o-backlog-${i}`));
      await waitUntil(async () => (await caller.transport.backlog(binding)) === 5, { what: 'a backlog of 5' });
      const second = await startNode([market]);
      await waitUntil(() => handled.length === 5, { what: 'the backlog handled' });
      await waitUntil(async () => (await caller.transport.backlog(binding)) === 0, { what: 'an empty backlog' });
      const scraped = await second.metrics.registry.metrics();
      assert.match(scraped, new RegExp(`chassis_subscription_backlog\\{subscription="${market.name}\\.[^"]+"\\} 0`));
    });

    it(`[${target.name}] a failed event handler gets the event again, with growing attempts`, async () => {
      const attempts: number[] = [];
      await startNode([
        subscriber(slice.names.market, (_payload, ctx) => {
          attempts.push(ctx.attempt);
          if (ctx.attempt < 3) throw new Error('the exchange is not answering');
        }),
      ]);
      const caller = await startNode([]);
      await caller.emit(slice.orderCreated, order('o-retry'));
      await waitUntil(() => attempts.length === 3, { what: 'three attempts' });
      await sleep(300);
      assert.deepEqual(attempts, [1, 2, 3]);
    });

    it(`[${target.name}] an event that keeps failing is dead-lettered after max attempts`, async () => {
      let calls = 0;
      const node = await startNode([
        subscriber(
          slice.names.market,
          () => {
            calls++;
            throw new Error('always failing');
          },
          { maxDeliveries: 3 },
        ),
      ]);
      const caller = await startNode([]);
      await caller.emit(slice.orderCreated, order('o-dead'));
      const queue = `${slice.names.market}.order_created`;
      await waitUntil(async () => (await node.transport.readDeadLetters(queue)).length === 1, {
        what: 'the dead letter',
      });
      await sleep(300);
      assert.equal(calls, 3);
      const [letter] = await node.transport.readDeadLetters(queue);
      assert.match(letter!.reason, /failed 3 times.*always failing/);
      assert.equal(JSON.parse(new TextDecoder().decode(letter!.message.body)).orderId, 'o-dead');
    });

    it(`[${target.name}] 1 MiB payloads travel in a request, a reply and an event`, async () => {
      const big = 'x'.repeat(1024 * 1024);
      const notes: number[] = [];
      await startNode([ledgerService(), subscriber(slice.names.market, (p) => void notes.push(p.note?.length ?? 0))]);
      const caller = await startNode([]);
      const reply = await caller.call(slice.echo, { data: big }, { timeoutMs: 10_000 });
      assert.equal(reply.data.length, big.length);
      await caller.emit(slice.orderCreated, order('o-big', big));
      await waitUntil(() => notes.length === 1, { what: 'the big event' });
      assert.deepEqual(notes, [big.length]);
    });

    it(`[${target.name}] 1,000 calls in flight at once all answer`, async () => {
      await startNode([ledgerService()]);
      const caller = await startNode([]);
      const replies = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => caller.call(slice.echo, { data: `m-${i}` }, { timeoutMs: 30_000 })),
      );
      assert.equal(replies.length, 1000);
      assert.deepEqual(
        replies.map((reply) => reply.data),
        replies.map((_, i) => `m-${i}`),
      );
    });

    it(`[${target.name}] MessagePack and JSON nodes talk to each other`, async () => {
      await startNode([ledgerService()], { serializer: 'msgpack' });
      const jsonCaller = await startNode([]);
      const packCaller = await startNode([], { serializer: 'msgpack' });
      assert.equal((await jsonCaller.call(slice.echo, { data: 'é∑' })).data, 'é∑');
      assert.equal((await packCaller.call(slice.echo, { data: 'é∑' })).data, 'é∑');
    });

    it(`[${target.name}] garbage bytes on a service's queue are logged and dead-lettered; the node keeps serving`, async () => {
      const lines: string[] = [];
      const logger = createLogger({
        nodeId: 'garbage-test',
        level: 'warn',
        destination: { write: (l) => lines.push(l) },
      });
      const handled: string[] = [];
      const node = await startNode(
        [ledgerService(), subscriber(slice.names.market, (p) => void handled.push(p.orderId))],
        { logger },
      );
      const raw = await cluster.transport();
      const reply = await raw.request(slice.names.ledger, 'echo', { headers: {}, body: GARBAGE }, { timeoutMs: 3000 });
      assert.equal(reply.headers.status, 'error');
      assert.equal(JSON.parse(new TextDecoder().decode(reply.body)).code, 'BAD_MESSAGE');
      await raw.publish(slice.orderCreated.name, { headers: {}, body: GARBAGE });
      await waitUntil(
        async () => (await node.transport.readDeadLetters(`${slice.names.market}.order_created`)).length === 1,
        { what: 'the garbage event dead-lettered' },
      );
      assert.equal((await node.transport.readDeadLetters(`rpc.${slice.names.ledger}`)).length, 1);
      assert.ok(lines.filter((line) => line.includes('dead-lettered')).length >= 2, lines.join('\n'));
      const caller = await startNode([]);
      assert.equal((await caller.call(slice.echo, { data: 'still here' })).data, 'still here');
      await caller.emit(slice.orderCreated, order('o-after-garbage'));
      await waitUntil(() => handled.length === 1, { what: 'a good event after the garbage' });
      assert.deepEqual(handled, ['o-after-garbage']);
    });

    it(`[${target.name}] the registry lists nodes with their services, actions and versions`, async () => {
      const a = await startNode([ledgerService()]);
      const b = await startNode([ordersService()]);
      await waitUntil(() => a.registry.list().some((n) => n.nodeId === b.id), { what: 'b heard by a' });
      const entry = a.registry.list().find((n) => n.nodeId === b.id)!;
      assert.equal(entry.transport, target.name);
      assert.deepEqual(entry.services, [
        { name: slice.names.orders, version: '0.0.0', actions: [slice.sellShares.name], events: [] },
      ]);
      assert.deepEqual(
        a.registry.instancesOf(slice.names.ledger).map((n) => n.nodeId),
        [a.id],
      );
      await b.stop();
      await waitUntil(() => !a.registry.list().some((n) => n.nodeId === b.id), { what: 'b gone from the list' });
    });

    it(`[${target.name}] graceful drain loses nothing: calls in flight answer, unhandled events go to the other instance`, async () => {
      const handled: string[] = [];
      const market = () =>
        subscriber(slice.names.market, async (payload) => {
          await sleep(10);
          handled.push(payload.orderId);
        });
      const a = await startNode([ledgerService(), market()]);
      await startNode([ledgerService(), market()]);
      const caller = await startNode([]);
      for (let i = 0; i < 100; i++) await caller.emit(slice.orderCreated, order(`o-${i}`));
      const calls = Array.from({ length: 40 }, () => caller.call(slice.slow, { ms: 100 }, { timeoutMs: 10_000 }));
      await waitUntil(() => handled.length >= 10, { what: 'some events handled' });
      await a.stop();
      const results = await Promise.allSettled(calls);
      assert.deepEqual(
        results.filter((r) => r.status === 'rejected'),
        [],
        'every call in flight answers',
      );
      await waitUntil(() => new Set(handled).size === 100, { what: 'all 100 events handled', timeoutMs: 20_000 });
      const missing = Array.from({ length: 100 }, (_, i) => `o-${i}`).filter((id) => !handled.includes(id));
      assert.deepEqual(missing, []);
    });

    it(`[${target.name}] reconnects after the real server restarts; no confirmed event is lost`, {
      skip: target.restart ? false : 'in-process transport: there is no server to restart',
      timeout: 90_000,
    }, async () => {
      const handled = new Set<string>();
      const market = () => subscriber(slice.names.market, (p) => void handled.add(p.orderId));
      await startNode([ledgerService()]);
      const marketNode = await startNode([market()]);
      const caller = await startNode([]);
      assert.equal((await caller.call(slice.echo, { data: 'before' })).data, 'before');
      // With its consumer stopped, events wait in the durable subscription through the restart.
      await marketNode.stop();
      for (let i = 0; i < 10; i++) await caller.emit(slice.orderCreated, order(`before-${i}`));
      await target.restart!();
      await waitUntil(
        () =>
          caller.call(slice.echo, { data: 'after' }, { timeoutMs: 1000 }).then(
            (r) => r.data === 'after',
            () => false,
          ),
        { timeoutMs: 60_000, intervalMs: 250, what: 'calls to work again after the restart' },
      );
      for (let i = 0; i < 10; i++) await caller.emit(slice.orderCreated, order(`after-${i}`));
      await startNode([market()]);
      await waitUntil(() => handled.size === 20, { what: 'all 20 events after the restart', timeoutMs: 30_000 });
    });
  });
}
