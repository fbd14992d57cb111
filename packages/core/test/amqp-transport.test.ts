import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type {
  Consumer,
  EventBinding,
  EventDelivery,
  Transport,
  TransportStatus,
  WireMessage,
} from '@chassis/core/transport';
import { restartRabbitmq, servers, skipUnlessUp, waitUntil } from '@chassis/testing';
import { connect as amqpConnect } from 'amqplib';
import { isChassisError } from '../src/errors.ts';
import { amqpTransport } from '../src/transports/amqp/index.ts';

/**
 * The RabbitMQ transport against a real broker, through the `Transport` interface. Every run uses its own
 * service names, and deletes the queues and exchanges it made.
 */

const url = servers.rabbitmq.url;
const run = randomBytes(3).toString('hex');
const name = (what: string) => `t${run}-${what}`;

const queues = new Set<string>();
const exchanges = new Set<string>();
const rpcQueue = (service: string) => `rpc-${service}`;
const eventQueue = (b: EventBinding) => {
  const [source, event] = [b.event.slice(0, b.event.indexOf('.')), b.event.slice(b.event.indexOf('.') + 1)];
  return `evtq-${source}-${event}--${b.service}.${b.handler}`;
};
/** Records what a binding creates, for the cleanup. */
function binding(source: string, event: string, service: string, handler = 'on_it'): EventBinding {
  const b = { event: `${source}.${event}`, service, handler };
  queues.add(eventQueue(b));
  queues.add(`dlq-${service}.${handler}`);
  exchanges.add(`${source}.events`);
  return b;
}
function served(service: string): string {
  queues.add(rpcQueue(service));
  queues.add(`dlq-rpc.${service}`);
  return service;
}

const encoder = new TextEncoder();
function msg(body: string | Uint8Array, headers: Record<string, string> = {}): WireMessage {
  return {
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? encoder.encode(body) : body,
  };
}
const text = (m: WireMessage) => Buffer.from(m.body).toString('utf8');
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function echo(): Parameters<Transport['serve']>[1] {
  return async ({ action, message }) => ({
    headers: { ...message.headers, action },
    body: message.body,
  });
}

async function rejection(promise: Promise<unknown>): Promise<{ code: string; message: string; ms: number }> {
  const started = Date.now();
  try {
    await promise;
  } catch (error) {
    assert.ok(isChassisError(error), `expected a ChassisError, got ${String(error)}`);
    return { code: error.code, message: error.message, ms: Date.now() - started };
  }
  assert.fail('expected the promise to reject');
}

/** Records the deliveries of a subscription and answers them with `decide`. */
function recorder(
  decide: (d: EventDelivery) => ReturnType<Parameters<Transport['subscribe']>[1]> = async () => ({ kind: 'ack' }),
) {
  const seen: { body: string; attempt: number; headers: Record<string, string>; at: number }[] = [];
  const handler: Parameters<Transport['subscribe']>[1] = async (delivery) => {
    seen.push({
      body: text(delivery.message),
      attempt: delivery.attempt,
      headers: delivery.message.headers,
      at: Date.now(),
    });
    return decide(delivery);
  };
  return { seen, handler };
}

describe('RabbitMQ transport', { skip: await skipUnlessUp('rabbitmq') }, () => {
  let a: Transport;
  let b: Transport;
  const statuses: Record<'a' | 'b', TransportStatus[]> = { a: [], b: [] };

  before(async () => {
    a = amqpTransport({ url, nodeId: `a-${run}`, maxReconnectDelayMs: 1000 });
    b = amqpTransport({ url, nodeId: `b-${run}`, maxReconnectDelayMs: 1000, publishWaitMs: 15_000 });
    a.onStatus((s) => statuses.a.push(s));
    b.onStatus((s) => statuses.b.push(s));
    await a.connect();
    await b.connect();
  });

  after(async () => {
    await a?.close();
    await b?.close();
    const admin = await amqpConnect(url);
    admin.on('error', () => undefined);
    for (const queue of queues) {
      const channel = await admin.createChannel();
      channel.on('error', () => undefined);
      await channel.deleteQueue(queue).catch(() => undefined);
      await channel.close().catch(() => undefined);
    }
    for (const exchange of exchanges) {
      const channel = await admin.createChannel();
      channel.on('error', () => undefined);
      await channel.deleteExchange(exchange).catch(() => undefined);
      await channel.close().catch(() => undefined);
    }
    await admin.close();
  });

  it('answers a request through rpc-<service>, headers and action intact', async () => {
    const service = served(name('echo'));
    const consumer = await a.serve(service, echo(), { concurrency: 5 });
    const reply = await b.request(service, 'sellShares', msg('{"n":1}', { auth: 'token-1' }), { timeoutMs: 5000 });
    assert.equal(text(reply), '{"n":1}');
    assert.equal(reply.headers.action, 'sellShares');
    assert.equal(reply.headers.auth, 'token-1');
    const admin = await amqpConnect(url);
    const channel = await admin.createChannel();
    const declared = await channel.checkQueue(rpcQueue(service));
    assert.equal(declared.consumerCount, 1);
    await admin.close();
    await consumer.stop();
  });

  it('fails at once with NO_SERVICE for a service nothing ever served', async () => {
    const outcome = await rejection(b.request(name('never'), 'hello', msg('{}'), { timeoutMs: 60_000 }));
    // NO_SERVICE, not TIMEOUT, shows it did not wait out the timeout; the bound is generous for a loaded machine.
    assert.equal(outcome.code, 'NO_SERVICE');
    assert.match(outcome.message, /No instance of service/);
    assert.ok(outcome.ms < 15_000, `took ${outcome.ms} ms of its 60 s`);
  });

  it('times out, and the broker drops the expired request instead of delivering it later', async () => {
    const service = served(name('slow'));
    const held = gate();
    const slow = await a.serve(
      service,
      async (request) => {
        // Held until the caller has given up: the order is certain, however loaded the machine.
        await held.wait;
        return request.message;
      },
      { concurrency: 1 },
    );
    const outcome = await rejection(b.request(service, 'wait', msg('{}'), { timeoutMs: 300 }));
    assert.equal(outcome.code, 'TIMEOUT');
    assert.ok(outcome.ms >= 290, `timed out after ${outcome.ms} ms, before its 300 ms`);
    held.open();
    await slow.stop();

    // The queue now exists with nobody consuming: a request waits there and expires with its timeout.
    const late = await rejection(b.request(service, 'expired', msg('{}'), { timeoutMs: 200 }));
    assert.equal(late.code, 'TIMEOUT');
    await sleep(300);
    const actions: string[] = [];
    const fresh = await a.serve(
      service,
      async (request) => {
        actions.push(request.action);
        return request.message;
      },
      { concurrency: 1 },
    );
    const reply = await b.request(service, 'fresh', msg('"ok"'), { timeoutMs: 5000 });
    assert.equal(text(reply), '"ok"');
    assert.deepEqual(actions, ['fresh']);
    await fresh.stop();
  });

  it('hands a foreign message without headers, reply-to or valid body to the handler without crashing', async () => {
    const service = served(name('foreign'));
    const got: WireMessage[] = [];
    const consumer = await a.serve(
      service,
      async (request) => {
        got.push(request.message);
        return request.message;
      },
      { concurrency: 2 },
    );
    const admin = await amqpConnect(url);
    const channel = await admin.createChannel();
    channel.publish('chassis.rpc', `${service}.garbage`, Buffer.from([0xff, 0x00, 0xfe]));
    await waitUntil(() => got.length === 1, { timeoutMs: 20_000, what: 'the foreign message' });
    await admin.close();
    assert.deepEqual(got[0]!.headers, {});
    assert.deepEqual([...got[0]!.body], [0xff, 0x00, 0xfe]);
    const reply = await b.request(service, 'after', msg('"still here"'), { timeoutMs: 3000 });
    assert.equal(text(reply), '"still here"');
    await consumer.stop();
  });

  it('shares a subscription between instances (competing consumers)', async () => {
    const source = name('orders');
    const sub = binding(source, 'order_created', name('market'));
    const onA = recorder(async () => {
      await sleep(20);
      return { kind: 'ack' };
    });
    const onB = recorder(async () => {
      await sleep(20);
      return { kind: 'ack' };
    });
    const ca = await a.subscribe(sub, onA.handler, { prefetch: 2 });
    const cb = await b.subscribe(sub, onB.handler, { prefetch: 2 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => b.publish(sub.event, msg(String(i)))));
    await waitUntil(() => onA.seen.length + onB.seen.length >= 20, { timeoutMs: 20_000, what: '20 events' });
    await sleep(200);
    const bodies = [...onA.seen, ...onB.seen].map((s) => Number(s.body)).sort((x, y) => x - y);
    assert.deepEqual(
      bodies,
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.ok(onA.seen.length > 0 && onB.seen.length > 0, `a got ${onA.seen.length}, b got ${onB.seen.length}`);
    assert.ok(onA.seen.every((s) => s.attempt === 1));
    await Promise.all([ca.stop(), cb.stop()]);
  });

  it('gives every subscribing service its own copy (fan-out)', async () => {
    const source = name('orders');
    const one = binding(source, 'order_placed', name('market'));
    const two = binding(source, 'order_placed', name('fees'));
    const first = recorder();
    const second = recorder();
    const c1 = await a.subscribe(one, first.handler, { prefetch: 10 });
    const c2 = await b.subscribe(two, second.handler, { prefetch: 10 });
    for (let i = 0; i < 5; i++) await a.publish(one.event, msg(String(i)));
    await waitUntil(() => first.seen.length >= 5 && second.seen.length >= 5, {
      timeoutMs: 20_000,
      what: 'both copies',
    });
    await sleep(100);
    assert.deepEqual(
      first.seen.map((s) => s.body),
      ['0', '1', '2', '3', '4'],
    );
    assert.deepEqual(
      second.seen.map((s) => s.body),
      ['0', '1', '2', '3', '4'],
    );
    await Promise.all([c1.stop(), c2.stop()]);
  });

  it('redelivers a retried event with attempt 2 after about the delay', async () => {
    const sub = binding(name('orders'), 'order_retried', name('market'));
    queues.add(`retry-${eventQueue(sub)}-1000`);
    const { seen, handler } = recorder(async (d) =>
      d.attempt === 1 ? { kind: 'retry', delayMs: 1000 } : { kind: 'ack' },
    );
    const consumer = await a.subscribe(sub, handler, { prefetch: 10 });
    await b.publish(sub.event, msg('"again"', { 'trace-me': 'yes' }));
    await waitUntil(() => seen.length >= 2, { timeoutMs: 20_000, what: 'the redelivery' });
    await sleep(300);
    assert.equal(seen.length, 2, 'acked on the second attempt, so no third delivery');
    const [first, second] = seen as [(typeof seen)[0], (typeof seen)[0]];
    assert.deepEqual([first.attempt, second.attempt], [1, 2]);
    assert.equal(second.body, '"again"');
    assert.equal(second.headers['trace-me'], 'yes');
    assert.equal(second.headers.attempt, '2');
    assert.equal(second.headers['x-death'], undefined, 'broker bookkeeping stays out of the headers');
    const waited = second.at - first.at;
    // Not before the delay; the upper bound only says "about", with room for a loaded machine.
    assert.ok(waited >= 900 && waited < 15_000, `redelivered after ${waited} ms`);
    await consumer.stop();
  });

  it('drains the classic evt- queue of an earlier version: unbinds it and consumes what waits in it', async () => {
    const sub = binding(name('orders'), 'order_legacy', name('market'));
    const exchange = `${sub.event.slice(0, sub.event.indexOf('.'))}.events`;
    const routingKey = sub.event.slice(sub.event.indexOf('.') + 1);
    const legacy = eventQueue(sub).replace(/^evtq-/, 'evt-');
    queues.add(legacy);
    const admin = await amqpConnect(url);
    try {
      const channel = await admin.createConfirmChannel();
      await channel.assertExchange(exchange, 'topic', { durable: true });
      await channel.assertQueue(legacy, { durable: true });
      await channel.bindQueue(legacy, exchange, routingKey);
      channel.publish(exchange, routingKey, Buffer.from('"old"'), { persistent: true, headers: { attempt: '1' } });
      await channel.waitForConfirms();
      assert.equal(await b.backlog(sub), 1, 'the classic queue counts in the backlog');
      const { seen, handler } = recorder();
      const consumer = await a.subscribe(sub, handler, { prefetch: 10 });
      await waitUntil(() => seen.length >= 1, { timeoutMs: 20_000, what: 'the waiting event' });
      await b.publish(sub.event, msg('"new"'));
      await waitUntil(() => seen.length >= 2, { timeoutMs: 20_000, what: 'the new event' });
      await sleep(300);
      // Unbound: the new event reached the quorum queue only.
      assert.deepEqual(
        seen.map((s) => [s.body, s.attempt]),
        [
          ['"old"', 1],
          ['"new"', 1],
        ],
      );
      const left = await channel.checkQueue(legacy);
      assert.equal(left.messageCount, 0);
      assert.equal(left.consumerCount, 1, 'still consumed until an operator deletes it');
      await consumer.stop();
    } finally {
      await admin.close();
    }
  });

  it('keeps dead-lettered events and dead letters, readable without removing them, oldest first', async () => {
    const sub = binding(name('orders'), 'order_broken', name('market'));
    const subscription = `${sub.service}.${sub.handler}`;
    const { seen, handler } = recorder(async () => ({ kind: 'dead', reason: 'boom: no such account' }));
    const consumer = await a.subscribe(sub, handler, { prefetch: 10 });
    const before = Date.now();
    await b.publish(sub.event, msg('{"id":7}', { id: 'm-7' }));
    let letters = await waitForLetters(a, subscription, 1);
    assert.equal(seen.length, 1);
    assert.equal(letters.length, 1);
    assert.equal(letters[0]!.reason, 'boom: no such account');
    assert.equal(letters[0]!.queue, subscription);
    assert.equal(text(letters[0]!.message), '{"id":7}');
    assert.equal(letters[0]!.message.headers.id, 'm-7');
    assert.equal(letters[0]!.message.headers['x-chassis-dead-reason'], undefined);
    assert.ok(letters[0]!.at >= before && letters[0]!.at <= Date.now());
    letters = await b.readDeadLetters(subscription);
    assert.equal(letters.length, 1, 'reading does not remove');
    await consumer.stop();

    const service = served(name('garbled'));
    for (const n of [1, 2, 3]) await b.deadLetter(`rpc.${service}`, msg(String(n)), `undecodable ${n}`);
    const firstTwo = await a.readDeadLetters(`rpc.${service}`, 2);
    assert.deepEqual(
      firstTwo.map((l) => [text(l.message), l.reason]),
      [
        ['1', 'undecodable 1'],
        ['2', 'undecodable 2'],
      ],
    );
    assert.equal((await a.readDeadLetters(`rpc.${service}`)).length, 3);
    assert.deepEqual(await a.readDeadLetters(name('nobody.nothing')), []);
  });

  it('carries payloads over 1 MiB in requests, replies and events', async () => {
    const big = randomBytes(1.5 * 1024 * 1024);
    const service = served(name('big'));
    const consumer = await a.serve(service, echo(), { concurrency: 2 });
    const reply = await b.request(service, 'mirror', msg(big), { timeoutMs: 10_000 });
    assert.equal(Buffer.compare(Buffer.from(reply.body), big), 0);

    const sub = binding(name('files'), 'file_uploaded', name('scanner'));
    const received: Uint8Array[] = [];
    const events = await a.subscribe(
      sub,
      async (d) => {
        received.push(d.message.body);
        return { kind: 'ack' };
      },
      { prefetch: 1 },
    );
    await b.publish(sub.event, msg(big));
    await waitUntil(() => received.length === 1, { timeoutMs: 20_000, what: 'the big event' });
    assert.equal(Buffer.compare(Buffer.from(received[0]!), big), 0);
    await Promise.all([consumer.stop(), events.stop()]);
  });

  it('answers 1000 concurrent requests, each with its own reply', async () => {
    const service = served(name('many'));
    const consumer = await a.serve(service, echo(), { concurrency: 50 });
    const replies = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => b.request(service, 'n', msg(String(i)), { timeoutMs: 20_000 })),
    );
    assert.deepEqual(
      replies.map((r) => Number(text(r))),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    await consumer.stop();
  });

  it('broadcasts to every listener of a topic and to no other', async () => {
    const topic = name('heartbeat');
    const heard: string[] = [];
    const l1 = await a.listen(topic, (m) => heard.push(`a:${text(m)}`));
    const l2 = await b.listen(topic, (m) => heard.push(`b:${text(m)}`));
    const other = await b.listen(name('other'), (m) => heard.push(`other:${text(m)}`));
    await a.broadcast(topic, msg('1'));
    await waitUntil(() => heard.length >= 2, { timeoutMs: 20_000, what: 'two listeners' });
    await sleep(100);
    assert.deepEqual(heard.sort(), ['a:1', 'b:1']);
    await Promise.all([l1.stop(), l2.stop(), other.stop()]);
  });

  it('stop() finishes and acks what is in flight and leaves the rest for another instance', async () => {
    const sub = binding(name('orders'), 'order_drained', name('market'));
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const first = recorder(async () => {
      await gate;
      return { kind: 'ack' };
    });
    const ca = await a.subscribe(sub, first.handler, { prefetch: 3 });
    for (let i = 0; i < 12; i++) await b.publish(sub.event, msg(String(i)));
    await waitUntil(() => first.seen.length === 3, { timeoutMs: 20_000, what: 'three deliveries in flight' });
    let stopped = false;
    const stopping = ca.stop().then(() => {
      stopped = true;
    });
    await sleep(200);
    assert.equal(stopped, false, 'stop waits for the handlers in flight');
    release();
    await stopping;
    assert.equal(first.seen.length, 3);

    const second = recorder();
    const cb = await b.subscribe(sub, second.handler, { prefetch: 10 });
    await waitUntil(() => second.seen.length >= 9, { timeoutMs: 20_000, what: 'the rest on the other instance' });
    await sleep(200);
    const all = [...first.seen, ...second.seen].map((s) => Number(s.body)).sort((x, y) => x - y);
    assert.deepEqual(
      all,
      Array.from({ length: 12 }, (_, i) => i),
      'each event handled exactly once',
    );
    await cb.stop();
  });

  it('stop() hands deliveries it had not started back to the broker', async () => {
    const sub = binding(name('orders'), 'order_burst', name('market'));
    // The queue exists and fills up before anyone consumes, so the whole prefetch arrives in one burst;
    // at 64 KiB each it spans many socket reads, most of which land after stop() was called.
    await (await a.subscribe(sub, recorder().handler, { prefetch: 1 })).stop();
    const filler = randomBytes(64 * 1024).toString('hex');
    await Promise.all(Array.from({ length: 40 }, (_, i) => b.publish(sub.event, msg(`${i} ${filler}`))));
    const first = recorder();
    const ca = await a.subscribe(sub, first.handler, { prefetch: 40 });
    await ca.stop();
    assert.ok(first.seen.length < 40, `the stopping instance handled all ${first.seen.length} deliveries`);

    const second = recorder();
    const cb = await b.subscribe(sub, second.handler, { prefetch: 40 });
    await waitUntil(() => first.seen.length + second.seen.length >= 40, { timeoutMs: 20_000, what: 'all 40 events' });
    await sleep(200);
    const all = [...first.seen, ...second.seen].map((s) => Number(s.body.split(' ')[0])).sort((x, y) => x - y);
    assert.deepEqual(
      all,
      Array.from({ length: 40 }, (_, i) => i),
      'each event handled exactly once',
    );
    await cb.stop();
  });

  it('survives a broker restart: reconnects, restarts consumers, keeps confirmed events', async () => {
    const service = served(name('durable'));
    // Answers only after the restart: with quorum queues on the broker, stop_app takes seconds to close the
    // connections, and a fixed delay could let the reply through first.
    const restarted = gate();
    const rpc = await a.serve(
      service,
      async ({ action, message }) => {
        if (action === 'slow') await restarted.wait;
        return message;
      },
      { concurrency: 5 },
    );
    const live = binding(name('orders'), 'order_live', name('market'));
    const liveSeen = recorder();
    const liveConsumer = await a.subscribe(live, liveSeen.handler, { prefetch: 10 });
    // A subscription whose queue exists while no instance runs: events wait in it across the restart.
    const parked = binding(name('orders'), 'order_parked', name('market'));
    await (await b.subscribe(parked, recorder().handler, { prefetch: 1 })).stop();
    for (let i = 0; i < 5; i++) await b.publish(parked.event, msg(String(i)));

    const topic = name('beat');
    const heard: string[] = [];
    const listener = await a.listen(topic, (m) => heard.push(text(m)));
    // Waits only briefly for a lost connection, so its publish gives up during the outage.
    const impatient = amqpTransport({ url, nodeId: `c-${run}`, publishWaitMs: 300 });
    await impatient.connect();

    statuses.a.length = 0;
    statuses.b.length = 0;
    // What failed during the outage is shown to have failed before the broker was back by the order of
    // these entries, not by millisecond bounds that a loaded machine misses.
    const order: string[] = [];
    const pending = rejection(b.request(service, 'slow', msg('{}'), { timeoutMs: 20_000 }));
    let duringOutage: Promise<{ code: string; ms: number }> | undefined;
    let publishedDuringOutage: Promise<void> | undefined;
    let gaveUp: Promise<{ code: string; ms: number }> | undefined;
    const unsubscribe = b.onStatus((status) => {
      if (status === 'disconnected' && !duringOutage) {
        duringOutage = rejection(b.request(service, 'echo', msg('{}'), { timeoutMs: 60_000 })).finally(() =>
          order.push('request during the outage failed'),
        );
        publishedDuringOutage = b.publish(live.event, msg('"during"'));
      }
      if (status === 'connected' && duringOutage) order.push('b reconnected');
    });
    impatient.onStatus((status) => {
      if (status === 'disconnected' && !gaveUp) {
        gaveUp = rejection(impatient.publish(live.event, msg('"lost"'))).finally(() =>
          order.push('impatient publish gave up'),
        );
      }
      if (status === 'connected' && gaveUp) order.push('impatient reconnected');
    });
    await sleep(100);
    await restartRabbitmq();
    restarted.open();
    await waitUntil(() => statuses.a.at(-1) === 'connected' && statuses.b.at(-1) === 'connected', {
      timeoutMs: 30_000,
      what: 'both transports to reconnect',
    });
    unsubscribe();

    assert.ok(gaveUp, 'the impatient transport saw the disconnection');
    const impatience = await gaveUp;
    assert.equal(impatience.code, 'TRANSPORT');
    assert.ok(impatience.ms >= 250, `gave up after ${impatience.ms} ms, before its 300 ms wait`);
    await impatient.close();
    await publishedDuringOutage;

    const lost = await pending;
    assert.equal(lost.code, 'TRANSPORT', 'a request waiting when the connection dropped fails as retryable');
    assert.ok(duringOutage, 'saw the disconnection');
    const fast = await duringOutage;
    assert.equal(fast.code, 'TRANSPORT', 'a request made during the outage fails, not waiting out its 60 s');
    const happenedBefore = (first: string, second: string) =>
      assert.ok(
        order.includes(first) && (!order.includes(second) || order.indexOf(first) < order.indexOf(second)),
        `${first} before ${second}: ${order.join(', ')}`,
      );
    happenedBefore('request during the outage failed', 'b reconnected');
    happenedBefore('impatient publish gave up', 'impatient reconnected');
    for (const seen of [statuses.a, statuses.b]) {
      assert.deepEqual(seen.slice(0, 2), ['disconnected', 'reconnecting']);
      assert.equal(seen.at(-1), 'connected');
    }

    const reply = await b.request(service, 'echo', msg('"back"'), { timeoutMs: 20_000 });
    assert.equal(text(reply), '"back"', 'the serving consumer was restarted');
    await b.publish(live.event, msg('"after"'));
    await waitUntil(() => liveSeen.seen.length === 2, { timeoutMs: 20_000, what: 'the live consumer' });
    assert.deepEqual(
      liveSeen.seen.map((s) => s.body),
      ['"during"', '"after"'],
      'a publish made during the outage waited for the connection',
    );
    await b.broadcast(topic, msg('"still listening"'));
    await waitUntil(() => heard.length === 1, { timeoutMs: 20_000, what: 'the listener' });
    await listener.stop();

    const parkedSeen = recorder();
    const resumed = await a.subscribe(parked, parkedSeen.handler, { prefetch: 10 });
    await waitUntil(() => parkedSeen.seen.length >= 5, {
      timeoutMs: 20_000,
      what: 'events confirmed before the restart',
    });
    assert.deepEqual(
      parkedSeen.seen.map((s) => s.body),
      ['0', '1', '2', '3', '4'],
    );
    await Promise.all([rpc.stop(), liveConsumer.stop(), resumed.stop()]);
  });

  it('close() fails waiting requests with TRANSPORT and reports closed', async () => {
    const c = amqpTransport({ url, nodeId: `c-${run}` });
    const seen: TransportStatus[] = [];
    c.onStatus((s) => seen.push(s));
    await c.connect();
    const service = served(name('closing'));
    const started = gate();
    const reply = gate();
    const consumer: Consumer = await a.serve(
      service,
      async (r) => {
        started.open();
        await reply.wait;
        return r.message;
      },
      { concurrency: 1 },
    );
    const waiting = rejection(c.request(service, 'wait', msg('{}'), { timeoutMs: 60_000 }));
    await started.wait;
    await c.close();
    // The handler has not answered and the timeout is far off: only close() can have settled it.
    const outcome = await waiting;
    assert.equal(outcome.code, 'TRANSPORT');
    reply.open();
    assert.deepEqual(seen, ['connected', 'closed']);
    assert.equal((await rejection(c.publish(`${name('x')}.y`, msg('{}')))).code, 'TRANSPORT');
    await consumer.stop();
  });
});

async function waitForLetters(transport: Transport, queue: string, count: number) {
  let letters = await transport.readDeadLetters(queue);
  await waitUntil(
    async () => {
      letters = await transport.readDeadLetters(queue);
      return letters.length >= count;
    },
    { timeoutMs: 20_000, what: `${count} dead letters on ${queue}` },
  );
  return letters;
}
