import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { servers, skipUnlessUp } from '@chassis/testing';
import { JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection, TimeoutError } from '@nats-io/transport-node';
import { isNoResponders } from '../src/transports/nats/errors.ts';
import { natsTransport } from '../src/transports/nats/index.ts';
import { pubAcksOf } from '../src/transports/nats/pub-acks.ts';

describe('JetStream publishes confirmed through one reply subscription (PubAcks)', {
  skip: await skipUnlessUp('nats'),
}, () => {
  const suffix = randomBytes(4).toString('hex');
  const stream = `pubacks_${suffix}`;
  const subject = `pubacks.${suffix}`;
  let nc: NatsConnection;

  before(async () => {
    nc = await connect({ servers: servers.nats.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${subject}.>`], duplicate_window: 60_000_000_000 });
  });
  after(async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  });

  it('resolves once stored, in the order published; the same msg id again is a duplicate, stored once', async () => {
    const acks = pubAcksOf(nc);
    assert.equal(pubAcksOf(nc), acks, 'one per connection');
    const body = (n: number) => new TextEncoder().encode(String(n));
    const results = await Promise.all(
      [1, 2, 3].map((n) => acks.publish(`${subject}.a`, body(n), undefined, `id-${n}`, 5_000)),
    );
    assert.deepEqual(results, [{ duplicate: false }, { duplicate: false }, { duplicate: false }]);
    const hdrs = headers();
    hdrs.set('x-kept', 'yes');
    assert.deepEqual(await acks.publish(`${subject}.a`, body(2), hdrs, 'id-2', 5_000), { duplicate: true });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream);
    assert.equal(info.state.messages, 3);
    const stored = await Promise.all([1, 2, 3].map((seq) => jsm.streams.getMessage(stream, { seq })));
    assert.deepEqual(
      stored.map((m) => [new TextDecoder().decode(m?.data), m?.header.get('Nats-Msg-Id')]),
      [
        ['1', 'id-1'],
        ['2', 'id-2'],
        ['3', 'id-3'],
      ],
    );
  });

  it("a transport's publishInOrder stores a list in its order, in one round trip; sent again, each is a duplicate, stored once", async () => {
    const transport = natsTransport({ url: servers.nats.url });
    await transport.connect();
    try {
      const names = ['first', 'second', 'third'].map((n) => `inorder-${suffix}.${n}`);
      const events = names.map((event, i) => ({
        event,
        message: {
          headers: { id: `inorder-${suffix}-${i}`, type: event, 'content-type': 'application/json' },
          body: new TextEncoder().encode(`{"n":${i}}`),
        },
      }));
      assert.ok(transport.publishInOrder);
      assert.deepEqual(await transport.publishInOrder(events), { stored: 3 });
      assert.deepEqual(await transport.publishInOrder(events), { stored: 3 }, 'duplicates count as stored');
      const jsm = await jetstreamManager(nc);
      const seqs: number[] = [];
      for (const event of names) {
        const info = await jsm.streams.info('CHASSIS_EVENTS', { subjects_filter: `evt.${event}` });
        assert.equal(info.state.subjects?.[`evt.${event}`], 1, `${event} stored once`);
        const stored = await jsm.streams.getMessage('CHASSIS_EVENTS', { last_by_subj: `evt.${event}` });
        seqs.push(stored?.seq ?? 0);
      }
      assert.deepEqual(
        [...seqs].sort((a, b) => a - b),
        seqs,
        'stored in the order given',
      );
    } finally {
      await transport.close();
    }
  });

  it('a subject no stream takes fails as no responders; JetStream refusing a message is its API error', async () => {
    const acks = pubAcksOf(nc);
    const none = await acks
      .publish(`nostream.${suffix}`, new Uint8Array(), undefined, undefined, 5_000)
      .catch((error: unknown) => error);
    assert.ok(isNoResponders(none), String(none));
    const hdrs = headers();
    hdrs.set('Nats-Expected-Stream', 'another-stream');
    const refused = await acks
      .publish(`${subject}.b`, new Uint8Array(), hdrs, undefined, 5_000)
      .catch((error: unknown) => error);
    assert.ok(refused instanceof JetStreamApiError, String(refused));
  });

  it('no answer within the deadline fails as a TimeoutError, on the shared timer', async () => {
    // A core subscriber that never answers: the server has someone to deliver to, so no 503 comes.
    const silent = nc.subscribe(`silent.${suffix}`);
    try {
      const started = Date.now();
      const late = await pubAcksOf(nc)
        .publish(`silent.${suffix}`, new Uint8Array(), undefined, undefined, 100)
        .catch((error: unknown) => error);
      assert.ok(late instanceof TimeoutError, String(late));
      assert.ok(Date.now() - started < 1_000, 'failed at its deadline');
    } finally {
      silent.unsubscribe();
    }
  });
});
