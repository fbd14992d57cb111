import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { servers, skipUnlessUp } from '@chassis/testing';
import { connect, type Msg, type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
import { PublishBatch } from '../../src/transports/nats/publish-batch.ts';

/** What reached the connection, in order; a subject named `refused` throws as an over-large publish does. */
function recorder() {
  const sent: string[] = [];
  const nc = {
    publish(subject: string) {
      if (subject === 'refused') throw new Error('max_payload size exceeded');
      sent.push(subject);
    },
  } as unknown as NatsConnection;
  return { nc, sent };
}

const body = new Uint8Array(0);
const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('NATS publish batch: the requests and replies of one turn of the event loop leave together', () => {
  it('a publish with nothing else in flight goes at once', () => {
    const { nc, sent } = recorder();
    new PublishBatch().publish(nc, 'a', body, undefined, undefined, true);
    assert.deepEqual(sent, ['a']);
  });

  it("a lone publish is written at once, not at the end of the microtask: the connection's held bytes go now", () => {
    const events: string[] = [];
    const nc = {
      publish: (subject: string) => events.push(`publish ${subject}`),
      protocol: { flushPending: () => events.push('write') },
    } as unknown as NatsConnection;
    const batch = new PublishBatch();
    batch.publish(nc, 'a', body, undefined, undefined, true);
    batch.publish(nc, 'b', body, undefined, undefined, false);
    assert.deepEqual(events, ['publish a', 'write'], 'one among others waits for its batch, written by nats.js');
  });

  it('publishes among others wait for the end of the turn, then go in the order they were made', async () => {
    const { nc, sent } = recorder();
    const batch = new PublishBatch();
    batch.publish(nc, 'a', body, undefined, undefined, false);
    await Promise.resolve();
    batch.publish(nc, 'b', body, undefined, undefined, false);
    // Alone, but a batch waits: it goes after it, never ahead.
    batch.publish(nc, 'c', body, undefined, undefined, true);
    assert.deepEqual(sent, [], 'nothing written within the turn');
    await turn();
    assert.deepEqual(sent, ['a', 'b', 'c']);
    batch.publish(nc, 'd', body, undefined, undefined, true);
    assert.deepEqual(sent, ['a', 'b', 'c', 'd'], 'once the batch is out, a lone publish goes at once again');
  });

  it('a request no longer wanted when its batch leaves (its caller gave up) is not sent', async () => {
    const { nc, sent } = recorder();
    const batch = new PublishBatch();
    let wanted = true;
    batch.publish(nc, 'a', body, undefined, undefined, false);
    batch.publish(nc, 'abandoned', body, undefined, undefined, false, () => wanted);
    batch.publish(nc, 'kept', body, undefined, undefined, false, () => true);
    wanted = false;
    await turn();
    assert.deepEqual(sent, ['a', 'kept']);
  });

  it('flush hands over what waits at once, as a drain or close needs', () => {
    const { nc, sent } = recorder();
    const batch = new PublishBatch();
    batch.publish(nc, 'a', body, undefined, undefined, false);
    batch.flush();
    assert.deepEqual(sent, ['a']);
    batch.flush();
    assert.deepEqual(sent, ['a'], 'nothing twice');
  });

  it('a publish the connection refuses is reported to its own sender; the rest of the batch still goes', async () => {
    const { nc, sent } = recorder();
    const batch = new PublishBatch();
    const failures: string[] = [];
    batch.publish(nc, 'a', body, undefined, undefined, false);
    batch.publish(nc, 'refused', body, undefined, (error) => failures.push((error as Error).message), false);
    batch.publish(nc, 'b', body, undefined, undefined, false);
    await turn();
    assert.deepEqual(sent, ['a', 'b']);
    assert.deepEqual(failures, ['max_payload size exceeded']);
    batch.publish(nc, 'refused', body, undefined, (error) => failures.push((error as Error).message), true);
    assert.equal(failures.length, 2, 'and so is one sent at once');
  });
});

const skipWithoutNats = await skipUnlessUp('nats');
const payload = Buffer.from('{"quantity":10}');
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');

describe('NATS publish batch on a real connection', { skip: skipWithoutNats }, () => {
  it('a publish handed over whole reaches a subscriber as nc.publish would: subject, reply, body', async () => {
    const nc = await connect({ servers: servers.nats.url });
    try {
      const subject = `chassis.test.whole.${Math.random().toString(36).slice(2)}`;
      const received: Msg[] = [];
      const done = new Promise<void>((resolve) => {
        nc.subscribe(subject, {
          max: 4,
          callback: (_error, msg) => {
            received.push(msg);
            if (received.length === 4) resolve();
          },
        });
      });
      await nc.flush();
      const batch = new PublishBatch();
      const before = nc.stats().outMsgs;
      batch.publish(nc, subject, payload, { reply: 'reply.here' }, undefined, true);
      batch.publish(nc, subject, new Uint8Array(0), undefined, undefined, false);
      batch.publish(nc, subject, Buffer.from('ünïcödé ✓'), undefined, undefined, false);
      const hdrs = natsHeaders();
      hdrs.set('id', '1');
      batch.publish(nc, subject, payload, { headers: hdrs }, undefined, false);
      batch.flush();
      await done;
      assert.deepEqual(
        received.map((msg) => [msg.subject, msg.reply ?? '', text(msg.data), msg.headers?.get('id') ?? '']),
        [
          [subject, 'reply.here', text(payload), ''],
          [subject, '', '', ''],
          [subject, '', 'ünïcödé ✓', ''],
          [subject, '', text(payload), '1'],
        ],
      );
      assert.equal(nc.stats().outMsgs - before, 4, "nats.js's own counts still see every message");
    } finally {
      await nc.close();
    }
  });

  it('a lone publish written straight to the socket never overtakes what nats.js still holds', async () => {
    const nc = await connect({ servers: servers.nats.url });
    try {
      const subject = `chassis.test.order.${Math.random().toString(36).slice(2)}`;
      const received: string[] = [];
      const done = new Promise<void>((resolve) => {
        nc.subscribe(subject, {
          max: 4,
          callback: (_error, msg) => {
            received.push(text(msg.data));
            if (received.length === 4) resolve();
          },
        });
      });
      await nc.flush();
      const batch = new PublishBatch();
      // Held by nats.js until the end of the microtask: the lone publish after it must wait its turn.
      nc.publish(subject, Buffer.from('1'));
      batch.publish(nc, subject, Buffer.from('2'), { reply: 'r' }, undefined, true);
      await nc.flush();
      // Nothing held now: this one goes straight to the socket, then nats.js's own after it.
      batch.publish(nc, subject, Buffer.from('3'), { reply: 'r' }, undefined, true);
      nc.publish(subject, Buffer.from('4'));
      await done;
      assert.deepEqual(received, ['1', '2', '3', '4']);
    } finally {
      await nc.close();
    }
  });

  it('a lone publish on a closed connection fails as nc.publish does, to its sender', async () => {
    const nc = await connect({ servers: servers.nats.url });
    await nc.close();
    const failures: unknown[] = [];
    new PublishBatch().publish(
      nc,
      'chassis.test.closed',
      payload,
      { reply: 'r' },
      (error) => failures.push(error),
      true,
    );
    assert.equal(failures.length, 1);
  });
});
