import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { servers, skipUnlessUp } from '@chassis/testing';
import { connect, type Msg } from '@nats-io/transport-node';
import { codecFor } from '../../src/envelope.ts';
import { ChassisError } from '../../src/errors.ts';
import { FRAME_MAGIC, frame, handedBackFrame, isFramed, unframe } from '../../src/transports/nats/frame.ts';
import { readHeaders, toNatsHeaders } from '../../src/transports/nats/headers.ts';
import { natsTransport } from '../../src/transports/nats/index.ts';

const envelope = {
  id: '5f0c6c1e-8a43-4c8e-9b1f-2f0a6a1d0c11',
  'timeout-ms': '5000',
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00',
  'correlation-id': 'req-42: with a colon, and ünïcödé',
};
const body = Buffer.from(JSON.stringify({ accountId: '101', symbol: 'BHP', quantity: 10 }));
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');

const skipWithoutNats = await skipUnlessUp('nats');

describe('NATS frame: the envelope of an RPC message at the front of its body', () => {
  it('reads back the envelope and the body it was written with', () => {
    const framed = frame(envelope, body)!;
    assert.equal(framed[0], FRAME_MAGIC);
    assert.ok(isFramed(framed));
    const read = unframe(framed)!;
    assert.deepEqual(read.headers, envelope);
    assert.equal(text(read.body), text(body));
    assert.deepEqual(unframe(frame(envelope, new Uint8Array(0))!)!.body.length, 0, 'an empty body');
  });

  it('keeps values as NATS headers would: trimmed, the first of a name', () => {
    const read = unframe(frame({ note: '  padded  ', empty: '' }, body)!)!;
    assert.deepEqual(read.headers, { note: 'padded', empty: '' });
  });

  it('a message with no envelope goes as its plain body', () => {
    assert.equal(frame({}, body), body);
  });

  it('refuses what NATS headers refuse, as BAD_MESSAGE naming the header', () => {
    for (const [key, value] of [
      ['a:b', 'x'],
      ['with space', 'x'],
      ['', 'x'],
      ['ok', 'line\nInjected: yes'],
    ] as const) {
      assert.throws(
        () => frame({ [key]: value }, body),
        (error: unknown) =>
          error instanceof ChassisError &&
          error.code === 'BAD_MESSAGE' &&
          error.message.includes(`Header "${key}" cannot be sent over NATS`),
      );
    }
  });

  it('an envelope too long for a frame (over 64 KiB) is left to the header form', () => {
    assert.equal(frame({ auth: 'x'.repeat(70_000) }, body), undefined);
  });

  it('no body Chassis writes begins like a frame: JSON is UTF-8 text, MessagePack never uses 0xC1', () => {
    const values: unknown[] = [null, true, 0, -1, 1.5, 2 ** 40, 'text', '', [], [1], {}, { a: 1 }, new Uint8Array(3)];
    for (const codec of [codecFor('json'), codecFor('msgpack')]) {
      for (const value of values) assert.ok(!isFramed(codec.encode(value)), `${codec.contentType} ${String(value)}`);
    }
    assert.ok(!isFramed(new Uint8Array(0)));
  });

  it('a frame this node cannot read (a later version, cut short) is not taken for one', () => {
    const framed = frame(envelope, body)!;
    const later = Uint8Array.from(framed);
    later[1] = 2;
    assert.equal(unframe(later), undefined);
    assert.equal(unframe(framed.subarray(0, 10)), undefined);
    assert.equal(unframe(framed.subarray(0, 3)), undefined);
  });

  it('a request handed back goes with the time it waited taken off its timeout-ms, or not at all', () => {
    const framed = frame(envelope, body)!;
    const back = handedBackFrame(framed, 1200)!;
    assert.deepEqual(unframe(back)!.headers, { ...envelope, 'timeout-ms': '3800' });
    assert.equal(text(unframe(back)!.body), text(body));
    assert.equal(handedBackFrame(framed, 5000), null, 'nothing left: its caller has given up');
    const without = frame({ id: 'x' }, body)!;
    assert.equal(handedBackFrame(without, 1200), without, 'no timeout-ms: as it came');
  });
});

describe('NATS frame on a real connection', { skip: skipWithoutNats }, () => {
  it('an RPC message is read from its frame, its header form or its plain body; an event never from a frame', async () => {
    const nc = await connect({ servers: servers.nats.url });
    try {
      const received: Msg[] = [];
      const subject = `chassis.test.frame.${Math.random().toString(36).slice(2)}`;
      const done = new Promise<void>((resolve) => {
        nc.subscribe(subject, {
          max: 3,
          callback: (_error, msg) => {
            received.push(msg);
            if (received.length === 3) resolve();
          },
        });
      });
      nc.publish(subject, frame(envelope, body)!);
      nc.publish(subject, body, { headers: toNatsHeaders(envelope) });
      nc.publish(subject, body);
      await done;
      const [framed, headed, plain] = received as [Msg, Msg, Msg];
      for (const [msg, framedForm] of [
        [framed, true],
        [headed, false],
      ] as const) {
        const read = readHeaders(msg, true);
        assert.deepEqual(read.headers, envelope);
        assert.equal(read.framed, framedForm);
        assert.equal(text(read.body), text(body));
      }
      assert.deepEqual(readHeaders(plain, true).headers, {});
      assert.equal(text(readHeaders(plain, true).body), text(body));
      const asEvent = readHeaders(framed);
      assert.deepEqual(asEvent.headers, {}, 'events do not carry frames');
      assert.equal(asEvent.body, framed.data);
    } finally {
      await nc.close();
    }
  });

  it('a request sent in the header form (a node before frames) is served, and answered in that form', async () => {
    const server = natsTransport({ url: servers.nats.url });
    const service = `frame${Math.random().toString(36).slice(2, 8)}`;
    await server.connect();
    const nc = await connect({ servers: servers.nats.url });
    try {
      const consumer = await server.serve(
        service,
        ({ message }) => ({ headers: { status: 'error' }, body: message.body }),
        {
          concurrency: 4,
        },
      );
      const hdrs = toNatsHeaders({ id: '1', 'timeout-ms': '5000' });
      const reply = await nc.request(`rpc.${service}.echo`, body, { headers: hdrs, timeout: 5000 });
      assert.equal(reply.headers?.get('status'), 'error', 'the reply carries its envelope in headers');
      assert.equal(text(reply.data), text(body), 'and its body plain');
      const framedReply = await nc.request(`rpc.${service}.echo`, frame({ id: '2', 'timeout-ms': '5000' }, body)!, {
        timeout: 5000,
      });
      assert.equal(framedReply.headers, undefined, 'a framed request is answered with a frame');
      assert.deepEqual(unframe(framedReply.data)?.headers, { status: 'error' });
      await consumer.stop();
    } finally {
      await nc.close();
      await server.close();
    }
  });

  it('between two transports a request and its error reply travel framed, in either envelope setting', async () => {
    for (const rpcEnvelope of ['frame', 'headers'] as const) {
      const server = natsTransport({ url: servers.nats.url });
      const client = natsTransport({ url: servers.nats.url, rpcEnvelope });
      const service = `frame${Math.random().toString(36).slice(2, 8)}`;
      await server.connect();
      await client.connect();
      try {
        let seen: Record<string, string> = {};
        const consumer = await server.serve(
          service,
          ({ message }) => {
            seen = message.headers;
            return { headers: { status: 'error', 'content-type': 'application/json' }, body: message.body };
          },
          { concurrency: 4 },
        );
        const reply = await client.request(
          service,
          'echo',
          { headers: { id: 'abc', 'timeout-ms': '5000', 'correlation-id': 'ünï: x' }, body },
          { timeoutMs: 5000 },
        );
        assert.deepEqual(seen, { id: 'abc', 'timeout-ms': '5000', 'correlation-id': 'ünï: x' }, rpcEnvelope);
        assert.deepEqual(reply.headers, { status: 'error', 'content-type': 'application/json' }, rpcEnvelope);
        assert.equal(text(reply.body), text(body), rpcEnvelope);
        await consumer.stop();
      } finally {
        await client.close();
        await server.close();
      }
    }
  });

  it('a framed request handed back on drain goes on with the time it waited taken off, or not at all', async () => {
    const service = `frame${Math.random().toString(36).slice(2, 8)}`;
    const [first, second, caller] = [
      natsTransport({ url: servers.nats.url }),
      natsTransport({ url: servers.nats.url }),
      natsTransport({ url: servers.nats.url }),
    ];
    await Promise.all([first.connect(), second.connect(), caller.connect()]);
    try {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const firstSaw: string[] = [];
      const consumer = await first.serve(
        service,
        async ({ message }) => {
          firstSaw.push(message.headers.id!);
          await gate;
          return { headers: {}, body };
        },
        { concurrency: 1 },
      );
      const request = (id: string, timeoutMs: number) =>
        caller.request(service, 'work', { headers: { id, 'timeout-ms': String(timeoutMs) }, body }, { timeoutMs });
      const blocking = request('r1', 10_000);
      while (firstSaw.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      const handedBack = request('r2', 10_000);
      const expired = request('r3', 300).catch((error: unknown) => error);
      await new Promise((resolve) => setTimeout(resolve, 600));
      const secondSaw = new Map<string, Record<string, string>>();
      await second.serve(
        service,
        ({ message }) => {
          secondSaw.set(message.headers.id!, message.headers);
          return { headers: {}, body: message.body };
        },
        { concurrency: 4 },
      );
      const stopping = consumer.stop();
      assert.equal(text((await handedBack).body), text(body), 'the body goes on as it was');
      release();
      await Promise.all([stopping, blocking]);
      const left = Number(secondSaw.get('r2')?.['timeout-ms']);
      assert.ok(left > 0 && left <= 10_000 - 500, `r2 went on with timeout-ms ${left}`);
      assert.ok((await expired) instanceof ChassisError);
      assert.equal(secondSaw.has('r3'), false, 'a request nobody waits for any more is not handed on');
      assert.deepEqual(firstSaw, ['r1']);
    } finally {
      await Promise.allSettled([first.close(), second.close(), caller.close()]);
    }
  });
});
