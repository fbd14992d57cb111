import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Consumer,
  type EventBinding,
  type EventDelivery,
  type EventHandler,
  subscriptionName,
  type Transport,
  type TransportStatus,
  type WireMessage,
} from '@chassis/core/transport';
import { restartNats, servers, skipUnlessUp, waitUntil } from '@chassis/testing';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { ChassisError } from '../src/errors.ts';
import { durableName, natsTransport } from '../src/transports/nats/index.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (message: WireMessage) => decoder.decode(message.body);
const wire = (body: string | Uint8Array, headers: Record<string, string> = {}): WireMessage => ({
  headers,
  body: typeof body === 'string' ? encoder.encode(body) : body,
});

async function rejection(promise: Promise<unknown>): Promise<ChassisError> {
  const error = await promise.then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ChassisError, `expected a ChassisError, got ${String(error)}`);
  return error;
}

/** An event handler that runs `f` and acks. */
function ack(f: (delivery: EventDelivery) => unknown): EventHandler {
  return async (delivery) => {
    f(delivery);
    return { kind: 'ack' };
  };
}

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('NATS transport', { skip: await skipUnlessUp('nats') }, () => {
  // Unique names per run: durable consumers and streams outlive the process.
  const run = `t${randomBytes(4).toString('hex')}`;
  const transports: Transport[] = [];
  const bindings: EventBinding[] = [];
  const errors: ChassisError[] = [];

  async function open(): Promise<Transport> {
    const transport = natsTransport({
      url: servers.nats.url,
      nodeId: `${run}-${transports.length}`,
      payloadBucket: `${run}-payloads`,
      onError: (e) => errors.push(e),
    });
    transports.push(transport);
    await transport.connect();
    return transport;
  }

  function binding(event: string, service: string, handler = `on_${event}`): EventBinding {
    const b = { event: `${run}.${event}`, service: `${run}_${service}`, handler };
    bindings.push(b);
    return b;
  }

  let client: Transport;
  let server: Transport;

  before(async () => {
    client = await open();
    server = await open();
  });

  after(async () => {
    await Promise.allSettled(transports.map((t) => t.close()));
    // Leave no durable consumers or dead letters of this run behind on the shared server.
    const nc = await natsConnect({ servers: servers.nats.url });
    const jsm = await jetstreamManager(nc);
    for (const b of bindings) {
      await jsm.consumers.delete('CHASSIS_EVENTS', durableName(subscriptionName(b))).catch(() => undefined);
    }
    for (const queue of [...bindings.map(subscriptionName), `rpc.${run}_ledger`]) {
      await jsm.streams.purge('CHASSIS_DLQ', { filter: `dlq.${queue}` }).catch(() => undefined);
    }
    for (const bucket of [`${run}-payloads`, `${run}-payloads-dlq`]) {
      await jsm.streams.delete(`OBJ_${bucket}`).catch(() => undefined);
    }
    await nc.close();
  });

  describe('RPC', () => {
    it('answers a request through the queue group, with headers, action and body', async () => {
      const service = `${run}_echo`;
      const seen: string[] = [];
      const consumer = await server.serve(
        service,
        async ({ action, message }) => {
          seen.push(action);
          return wire(`${action}:${text(message)}`, {
            status: 'ok',
            'correlation-id': message.headers['correlation-id'] ?? '',
          });
        },
        { concurrency: 4 },
      );
      const reply = await client.request(service, 'sellShares', wire('hi', { 'correlation-id': 'c-1' }), {
        timeoutMs: 2000,
      });
      assert.equal(text(reply), 'sellShares:hi');
      assert.deepEqual(reply.headers, { status: 'ok', 'correlation-id': 'c-1' });
      assert.deepEqual(seen, ['sellShares']);
      await consumer.stop();
    });

    it('fails at once with NO_SERVICE when nobody serves', async () => {
      const started = Date.now();
      const error = await rejection(client.request(`${run}_nobody`, 'quote', wire('{}'), { timeoutMs: 60_000 }));
      const elapsed = Date.now() - started;
      // NO_SERVICE, not TIMEOUT, already shows it did not wait out the timeout; the bound is for a
      // regression to a shorter wait, and generous enough for a loaded machine.
      assert.equal(error.code, 'NO_SERVICE');
      assert.equal(error.retryable, true);
      assert.match(error.message, new RegExp(`No instance of service ${run}_nobody is serving`));
      assert.ok(elapsed < 15_000, `took ${elapsed} ms of its 60 s`);
    });

    it('times out with TIMEOUT when the reply is late, and ignores the late reply', async () => {
      const service = `${run}_slow`;
      const reply = gate();
      let answered = false;
      const consumer = await server.serve(
        service,
        async ({ action }) => {
          // Held until the caller has given up: the order is certain, however loaded the machine.
          await reply.wait;
          answered = true;
          return wire(action);
        },
        { concurrency: 1 },
      );
      const started = Date.now();
      const error = await rejection(client.request(service, 'slow', wire(''), { timeoutMs: 150 }));
      const elapsed = Date.now() - started;
      assert.equal(error.code, 'TIMEOUT');
      assert.ok(elapsed >= 140, `timed out after ${elapsed} ms, before its 150 ms`);
      reply.open();
      await waitUntil(() => answered, { what: 'the late reply to be sent' });
      await sleep(100);
      assert.equal(
        text(await client.request(service, 'next', wire(''), { timeoutMs: 5000 })),
        'next',
        'the late reply is not taken for the next request',
      );
      await consumer.stop();
    });

    it('survives messages without headers or reply subject (nats pub garbage)', async () => {
      const service = `${run}_raw`;
      const received: WireMessage[] = [];
      const consumer = await server.serve(
        service,
        async ({ message }) => {
          received.push(message);
          return wire('fine');
        },
        { concurrency: 2 },
      );
      const nc = await natsConnect({ servers: servers.nats.url });
      nc.publish(`rpc.${service}.sellShares`, 'garbage');
      const reply = await nc.request(`rpc.${service}.sellShares`, 'no headers either', { timeout: 2000 });
      await nc.close();
      assert.equal(reply.string(), 'fine');
      await waitUntil(() => received.length === 2, { timeoutMs: 20_000, what: 'both raw messages' });
      assert.deepEqual(
        received.map((m) => [m.headers, text(m)]),
        [
          [{}, 'garbage'],
          [{}, 'no headers either'],
        ],
      );
      assert.equal(text(await client.request(service, 'x', wire(''), { timeoutMs: 2000 })), 'fine');
      await consumer.stop();
    });

    it('handles at most `concurrency` requests at once per instance', async () => {
      const service = `${run}_bounded`;
      let active = 0;
      let peak = 0;
      const consumer = await server.serve(
        service,
        async () => {
          peak = Math.max(peak, ++active);
          await sleep(20);
          active--;
          return wire('ok');
        },
        { concurrency: 3 },
      );
      await Promise.all(
        Array.from({ length: 15 }, () => client.request(service, 'work', wire(''), { timeoutMs: 5000 })),
      );
      assert.equal(peak, 3);
      await consumer.stop();
    });

    it('answers 1,000 concurrent requests, each with its own reply', async () => {
      const service = `${run}_many`;
      const consumer = await server.serve(service, async ({ message }) => wire(`re:${text(message)}`), {
        concurrency: 64,
      });
      const replies = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => client.request(service, 'echo', wire(`m-${i}`), { timeoutMs: 10_000 })),
      );
      assert.deepEqual(
        replies.map(text),
        replies.map((_, i) => `re:m-${i}`),
      );
      await consumer.stop();
    });

    it('carries bodies over 1 MiB both ways through the object store', async () => {
      const service = `${run}_big`;
      const request = randomBytes(1024 * 1024 + 4096);
      const response = randomBytes(1536 * 1024);
      let receivedHeaders: Record<string, string> = {};
      let receivedBody: Uint8Array | undefined;
      const consumer = await server.serve(
        service,
        async ({ message }) => {
          // Kept for the test to check: an assertion here would throw into the transport, not fail the test.
          receivedHeaders = message.headers;
          receivedBody = message.body;
          return wire(response, { status: 'ok' });
        },
        { concurrency: 2 },
      );
      const reply = await client.request(service, 'upload', wire(request, { id: 'big-1' }), { timeoutMs: 10_000 });
      assert.ok(receivedBody && Buffer.from(receivedBody).equals(request), 'the request body arrives intact');
      assert.ok(Buffer.from(reply.body).equals(response), 'the reply body arrives intact');
      assert.deepEqual(reply.headers, { status: 'ok' }, 'the claim-check header stays inside the transport');
      assert.deepEqual(receivedHeaders, { id: 'big-1' });
      await consumer.stop();
    });

    it('stop() lets requests in flight answer before it resolves', async () => {
      const service = `${run}_drain`;
      const started = gate();
      const consumer = await server.serve(
        service,
        async () => {
          started.open();
          await sleep(200);
          return wire('done');
        },
        { concurrency: 1 },
      );
      const pending = client.request(service, 'work', wire(''), { timeoutMs: 5000 });
      await started.wait;
      await consumer.stop();
      assert.equal(text(await pending), 'done');
      const error = await rejection(client.request(service, 'work', wire(''), { timeoutMs: 1000 }));
      assert.equal(error.code, 'NO_SERVICE', 'a stopped instance no longer serves');
    });

    it('close() rejects requests still waiting with TRANSPORT', async () => {
      const service = `${run}_closing`;
      const started = gate();
      const reply = gate();
      const consumer = await server.serve(
        service,
        async () => {
          started.open();
          await reply.wait;
          return wire('too late');
        },
        { concurrency: 1 },
      );
      const closing = await open();
      const pending = rejection(closing.request(service, 'work', wire(''), { timeoutMs: 60_000 }));
      await started.wait;
      await closing.close();
      // The handler has not answered and the timeout is far off: only close() can have settled it.
      const error = await pending;
      assert.equal(error.code, 'TRANSPORT');
      assert.equal(error.retryable, true);
      reply.open();
      assert.equal((await rejection(closing.request(service, 'work', wire(''), { timeoutMs: 100 }))).code, 'TRANSPORT');
      await consumer.stop();
    });
  });

  describe('events', () => {
    it('competing instances of one service share the events, each handled once', async () => {
      const b = binding('shared', 'market');
      const other = await open();
      const handledBy = new Map<string, string>();
      const twice: string[] = [];
      const consumers: Consumer[] = [];
      for (const [name, transport] of [
        ['a', server],
        ['b', other],
      ] as const) {
        consumers.push(
          await transport.subscribe(
            b,
            async ({ message }) => {
              await sleep(15);
              if (handledBy.has(text(message))) twice.push(text(message));
              handledBy.set(text(message), name);
              return { kind: 'ack' };
            },
            { prefetch: 2 },
          ),
        );
      }
      for (let i = 0; i < 30; i++) await client.publish(b.event, wire(`e-${i}`, { id: `${run}-shared-${i}` }));
      await waitUntil(() => handledBy.size === 30, { timeoutMs: 10_000, what: '30 events' });
      await sleep(200);
      assert.equal(handledBy.size, 30);
      assert.deepEqual(twice, [], 'no event handled twice');
      const counts = [...handledBy.values()].reduce((m, n) => m.set(n, (m.get(n) ?? 0) + 1), new Map<string, number>());
      assert.ok((counts.get('a') ?? 0) > 0 && (counts.get('b') ?? 0) > 0, `split ${JSON.stringify([...counts])}`);
      await Promise.all(consumers.map((c) => c.stop()));
    });

    it('every subscribing service gets every event', async () => {
      const market = binding('fanout', 'market');
      const notifications = binding('fanout', 'notifications');
      const got = { market: [] as string[], notifications: [] as string[] };
      const a = await server.subscribe(
        market,
        ack(({ message }) => got.market.push(text(message))),
        {
          prefetch: 5,
        },
      );
      const n = await server.subscribe(
        notifications,
        ack(({ message }) => got.notifications.push(text(message))),
        { prefetch: 5 },
      );
      for (let i = 0; i < 5; i++) await client.publish(market.event, wire(`f-${i}`, { id: `${run}-fan-${i}` }));
      await waitUntil(() => got.market.length === 5 && got.notifications.length === 5, { what: 'both copies' });
      assert.deepEqual(got.market.sort(), got.notifications.sort());
      await Promise.all([a.stop(), n.stop()]);
    });

    it('deduplicates a republished event with the same id', async () => {
      const b = binding('dedupe', 'market');
      const got: string[] = [];
      const consumer = await server.subscribe(
        b,
        ack(({ message }) => got.push(text(message))),
        {
          prefetch: 5,
        },
      );
      await client.publish(b.event, wire('once', { id: `${run}-dup` }));
      await client.publish(b.event, wire('once', { id: `${run}-dup` }));
      await client.publish(b.event, wire('marker', { id: `${run}-marker` }));
      await waitUntil(() => got.includes('marker'), { what: 'the marker' });
      await sleep(100);
      assert.deepEqual(got, ['once', 'marker']);
      await consumer.stop();
    });

    it('retry redelivers after the delay with attempt 2; headers arrive as published', async () => {
      const b = binding('retry', 'market');
      const deliveries: { attempt: number; at: number; headers: Record<string, string> }[] = [];
      const consumer = await server.subscribe(
        b,
        async ({ attempt, message }) => {
          deliveries.push({ attempt, at: Date.now(), headers: message.headers });
          return attempt === 1 ? { kind: 'retry', delayMs: 300 } : { kind: 'ack' };
        },
        { prefetch: 1 },
      );
      await client.publish(b.event, wire('again', { id: `${run}-retry`, type: b.event }));
      await waitUntil(() => deliveries.length === 2, { what: 'the redelivery' });
      await sleep(400);
      assert.deepEqual(
        deliveries.map((d) => d.attempt),
        [1, 2],
      );
      const gap = deliveries[1]!.at - deliveries[0]!.at;
      assert.ok(gap >= 280, `redelivered after ${gap} ms, expected the 300 ms delay`);
      assert.deepEqual(deliveries[0]!.headers, { id: `${run}-retry`, type: b.event });
      await consumer.stop();
    });

    it('dead disposition stores a dead letter, readable without removing it, and stops deliveries', async () => {
      const b = binding('dead', 'market');
      const queue = subscriptionName(b);
      let calls = 0;
      const consumer = await server.subscribe(
        b,
        async () => {
          calls++;
          return { kind: 'dead', reason: 'handler failed 5 times: exchange down' };
        },
        { prefetch: 1 },
      );
      const before = Date.now();
      await client.publish(
        b.event,
        wire('{"orderId":"o-1"}', { id: `${run}-dead-1`, 'content-type': 'application/json' }),
      );
      await client.publish(b.event, wire('{"orderId":"o-2"}', { id: `${run}-dead-2` }));
      await waitUntil(async () => (await client.readDeadLetters(queue)).length === 2, { what: 'two dead letters' });
      await sleep(200);
      assert.equal(calls, 2, 'a dead-lettered event is not delivered again');
      const letters = await client.readDeadLetters(queue);
      assert.equal(letters.length, 2, 'reading does not remove');
      assert.deepEqual(
        letters.map((l) => text(l.message)),
        ['{"orderId":"o-1"}', '{"orderId":"o-2"}'],
        'oldest first',
      );
      const [first] = letters;
      assert.equal(first!.reason, 'handler failed 5 times: exchange down');
      assert.equal(first!.queue, queue);
      assert.ok(first!.at >= before - 1000 && first!.at <= Date.now());
      assert.deepEqual(first!.message.headers, { id: `${run}-dead-1`, 'content-type': 'application/json' });
      assert.equal((await client.readDeadLetters(queue, 1)).length, 1, 'limit is honoured');
      await consumer.stop();
    });

    it('deadLetter() and readDeadLetters() work for RPC queues, large bodies included', async () => {
      const queue = `rpc.${run}_ledger`;
      const big = randomBytes(1100 * 1024);
      await client.deadLetter(queue, wire('\xff garbage', { node: 'n1' }), 'undecodable body');
      await client.deadLetter(queue, wire(big), 'too big to handle');
      const letters = await server.readDeadLetters(queue);
      assert.deepEqual(
        letters.map((l) => l.reason),
        ['undecodable body', 'too big to handle'],
      );
      assert.deepEqual(letters[0]!.message.headers, { node: 'n1' });
      assert.ok(Buffer.from(letters[1]!.message.body).equals(big));
      assert.deepEqual(await server.readDeadLetters(`rpc.${run}_empty`), []);
    });

    it('carries an event over 1 MiB', async () => {
      const b = binding('big', 'market');
      const body = randomBytes(1024 * 1024 + 1);
      const got: WireMessage[] = [];
      const consumer = await server.subscribe(
        b,
        ack(({ message }) => got.push(message)),
        {
          prefetch: 1,
        },
      );
      await client.publish(b.event, wire(body, { id: `${run}-big` }));
      await waitUntil(() => got.length === 1, { what: 'the big event' });
      assert.ok(Buffer.from(got[0]!.body).equals(body));
      assert.deepEqual(got[0]!.headers, { id: `${run}-big` });
      await consumer.stop();
    });

    it('a new subscription sees events from its creation on, and keeps those published while it is stopped', async () => {
      const b = binding('durable', 'market');
      await client.publish(b.event, wire('before-anyone', { id: `${run}-d0` }));
      const got: string[] = [];
      const handler = ack(({ message }) => got.push(text(message)));
      const first = await server.subscribe(b, handler, { prefetch: 2 });
      await first.stop();
      await client.publish(b.event, wire('while-stopped', { id: `${run}-d1` }));
      const second = await server.subscribe(b, handler, { prefetch: 2 });
      await waitUntil(() => got.length === 1, { what: 'the waiting event' });
      await sleep(200);
      assert.deepEqual(got, ['while-stopped']);
      await second.stop();
    });

    it('stop() finishes and acks what is in flight and leaves the rest to another instance at once', async () => {
      const b = binding('drain', 'market');
      // An idle instance that stops must not leave a pull request behind that swallows later events.
      const idle = await open();
      const strays: string[] = [];
      const c = await idle.subscribe(
        b,
        async ({ message }) => {
          strays.push(text(message));
          return { kind: 'ack' };
        },
        { prefetch: 5 },
      );
      await c.stop();

      const handledByA: string[] = [];
      const handledByB: string[] = [];
      const started = gate();
      const release = gate();
      const a = await server.subscribe(
        b,
        async ({ message }) => {
          handledByA.push(text(message));
          started.open();
          await release.wait;
          return { kind: 'ack' };
        },
        { prefetch: 1 },
      );
      for (let i = 0; i < 4; i++) await client.publish(b.event, wire(`s-${i}`, { id: `${run}-stop-${i}` }));
      await started.wait;
      let stopped = false;
      const stopping = a.stop().then(() => {
        stopped = true;
      });
      await sleep(100);
      assert.equal(stopped, false, 'stop() waits for the handler in flight');
      release.open();
      await stopping;
      assert.deepEqual(handledByA, ['s-0']);

      const other = await open();
      const bConsumer = await other.subscribe(
        b,
        ack(({ message }) => handledByB.push(text(message))),
        { prefetch: 1 },
      );
      for (let i = 4; i < 7; i++) await client.publish(b.event, wire(`s-${i}`, { id: `${run}-stop-${i}` }));
      // Half the 30 s ack wait, generous on a loaded machine: nothing was left pending on the stopped instances.
      await waitUntil(() => strays.length > 0 || handledByB.length === 6, {
        timeoutMs: 15_000,
        what: 'the other instance to get the rest',
      });
      assert.deepEqual(strays, [], 'a stopped instance got no event');
      assert.deepEqual(handledByB.sort(), ['s-1', 's-2', 's-3', 's-4', 's-5', 's-6']);
      await bConsumer.stop();
    });
  });

  describe('broadcast', () => {
    it('reaches every listener and stops after stop()', async () => {
      const topic = `${run}.heartbeat`;
      const heard: string[][] = [[], []];
      const listeners = await Promise.all(
        [client, server].map((t, i) => t.listen(topic, (message) => heard[i]!.push(text(message)))),
      );
      await client.broadcast(topic, wire('beat-1', { node: 'n1' }));
      await waitUntil(() => heard[0]!.length === 1 && heard[1]!.length === 1, {
        timeoutMs: 2000,
        what: 'both listeners',
      });
      await listeners[1]!.stop();
      await client.broadcast(topic, wire('beat-2'));
      await waitUntil(() => heard[0]!.length === 2, { timeoutMs: 20_000, what: 'the second beat' });
      await sleep(50);
      assert.deepEqual(heard, [['beat-1', 'beat-2'], ['beat-1']]);
      await listeners[0]!.stop();
    });
  });

  describe('after a real server restart', () => {
    it('RPC and JetStream consuming resume by themselves; no confirmed event is lost', {
      timeout: 45_000,
    }, async () => {
      const service = `${run}_survivor`;
      const b = binding('restart', 'market');
      const serving = await open();
      const consuming = await open();
      const calling = await open();
      const statuses: TransportStatus[] = [];
      consuming.onStatus((s) => statuses.push(s));

      const rpc = await serving.serve(
        service,
        async ({ action }) => {
          if (action === 'hang') await sleep(5000);
          return wire(action);
        },
        { concurrency: 8 },
      );
      const handled = new Set<string>();
      const inFlight = gate();
      const release = gate();
      const events = await consuming.subscribe(
        b,
        async ({ message }) => {
          if (text(message) === 'before-0') {
            inFlight.open();
            await release.wait;
          }
          handled.add(text(message));
          return { kind: 'ack' };
        },
        { prefetch: 1 },
      );
      assert.equal(text(await calling.request(service, 'ping', wire(''), { timeoutMs: 2000 })), 'ping');
      for (let i = 0; i < 5; i++) await calling.publish(b.event, wire(`before-${i}`, { id: `${run}-r-${i}` }));
      // before-0 is being handled across the restart; before-1..4 wait in the stream, unacked.
      await inFlight.wait;
      // Whether the waiting request failed before the connection came back is read from the order of
      // these entries, not from a time bound that a loaded machine can miss.
      const order: string[] = [];
      calling.onStatus((s) => {
        if (s === 'connected' && order.length > 0) order.push('calling reconnected');
        if (s === 'disconnected') order.push('calling disconnected');
      });
      const hanging = rejection(calling.request(service, 'hang', wire(''), { timeoutMs: 40_000 })).finally(() =>
        order.push('hanging request failed'),
      );
      await sleep(50);

      await restartNats({ downMs: 500 });
      const lost = await hanging;
      assert.equal(lost.code, 'TRANSPORT', 'a request waiting when the connection drops fails at once');
      assert.ok(lost.retryable);
      const failedAt = order.indexOf('hanging request failed');
      const backAt = order.indexOf('calling reconnected');
      assert.ok(failedAt >= 0 && (backAt < 0 || failedAt < backAt), `failed before it was back: ${order.join(', ')}`);
      release.open();

      await waitUntil(
        () =>
          calling.request(service, 'pong', wire(''), { timeoutMs: 1000 }).then(
            (r) => text(r) === 'pong',
            () => false,
          ),
        { timeoutMs: 20_000, intervalMs: 200, what: 'RPC to work again' },
      );
      for (let i = 0; i < 3; i++) await calling.publish(b.event, wire(`after-${i}`, { id: `${run}-ra-${i}` }));
      await waitUntil(() => handled.size === 8, { timeoutMs: 20_000, what: 'all 8 events' });
      assert.deepEqual([...handled].sort(), [
        'after-0',
        'after-1',
        'after-2',
        'before-0',
        'before-1',
        'before-2',
        'before-3',
        'before-4',
      ]);
      assert.ok(statuses.includes('disconnected'), `statuses ${statuses.join(',')}`);
      assert.equal(statuses.at(-1), 'connected');
      await Promise.all([rpc.stop(), events.stop()]);
    });
  });

  it('reports no unexpected background errors', () => {
    assert.deepEqual(
      errors.map((e) => e.message),
      [],
    );
  });
});
