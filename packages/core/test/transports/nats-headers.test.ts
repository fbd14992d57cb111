import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { servers, skipUnlessUp } from '@chassis/testing';
import { connect, type Msg, MsgHdrsImpl, MsgImpl, headers as natsHeaders } from '@nats-io/transport-node';
import { ChassisError } from '../../src/errors.ts';
import {
  fromNatsHeaders,
  parseHeaderBlock,
  readHeaders,
  sealedNatsHeaders,
  toNatsHeaders,
} from '../../src/transports/nats/headers.ts';

const envelope = {
  id: '5f0c6c1e-8a43-4c8e-9b1f-2f0a6a1d0c11',
  'timeout-ms': '5000',
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00',
  'correlation-id': 'req-42: with a colon, and ünïcödé',
};

const skipWithoutNats = await skipUnlessUp('nats');

// The bytes alone: ours come in a pooled Buffer, nats.js's in a plain Uint8Array.
const encode = (hdrs: unknown) => new Uint8Array((hdrs as MsgHdrsImpl).encode());

describe('NATS headers: written and read in one pass, as nats.js writes and reads them', () => {
  it('the envelope goes on the wire byte for byte as nats.js’s own set() would put it', () => {
    const theirs = natsHeaders();
    for (const [key, value] of Object.entries(envelope)) theirs.set(key, value);
    assert.deepEqual(encode(toNatsHeaders(envelope)), encode(theirs));
    assert.equal(toNatsHeaders({}), undefined, 'no header block at all for no headers');
    // RPC requests and replies: the block written as text once, the same bytes.
    assert.deepEqual(encode(sealedNatsHeaders(envelope)), encode(theirs));
    const padded = { note: '  padded  ', 'timeout-ms': '5' };
    assert.deepEqual(encode(sealedNatsHeaders(padded)), encode(toNatsHeaders(padded)));
    assert.equal(sealedNatsHeaders({}), undefined);
  });

  it('refuses what nats.js refuses, as BAD_MESSAGE naming the header', () => {
    for (const [key, value, reason] of [
      ['a:b', 'x', /':' is not a valid character/],
      ['with space', 'x', /' ' is not a valid character/],
      ['naïve', 'x', /'ï' is not a valid character/],
      ['', 'x', /cannot be empty/],
      ['ok', 'line\r\nInjected: yes', /cannot contain/],
    ] as const) {
      for (const write of [toNatsHeaders, sealedNatsHeaders]) {
        assert.throws(
          () => write({ [key]: value }),
          (error: unknown) =>
            error instanceof ChassisError &&
            error.code === 'BAD_MESSAGE' &&
            error.message.includes(`Header "${key}" cannot be sent over NATS`) &&
            reason.test(error.message),
          `${JSON.stringify(key)}: ${JSON.stringify(value)}`,
        );
      }
    }
  });

  it('reads a header block as nats.js decodes it: first value of each name, claim and Nats-Msg-Id apart, the status code', () => {
    const blocks = [
      'NATS/1.0\r\nid: 1\r\ntimeout-ms: 5000\r\n\r\n',
      'NATS/1.0 503\r\n\r\n',
      'NATS/1.0 503 No Responders\r\n\r\n',
      'NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n',
      'NATS/1.0\r\nid: first\r\nid: second\r\nNats-Msg-Id: evt-1\r\nchassis-claim: chassis-payloads/abc\r\n\r\n',
      'NATS/1.0\r\ncorrelation-id:   spaced: and colons  \r\nempty:\r\nconstructor: x\r\n\r\n',
      `NATS/1.0\r\nnote: ünïcödé ✓\r\n\r\n`,
    ];
    for (const block of blocks) {
      const theirs = MsgHdrsImpl.decode(new TextEncoder().encode(block));
      const ours = parseHeaderBlock(block);
      assert.deepEqual(ours.headers, fromNatsHeaders(theirs), block);
      assert.equal(ours.code, theirs.code, block);
      assert.equal(ours.claim, theirs.get('chassis-claim') || undefined, block);
    }
  });

  it('a message off a real connection is read from its bytes, and reads as msg.headers says', {
    skip: skipWithoutNats,
  }, async () => {
    const nc = await connect({ servers: servers.nats.url });
    try {
      const received: Msg[] = [];
      const subject = `chassis.test.headers.${Math.random().toString(36).slice(2)}`;
      const done = new Promise<void>((resolve) => {
        nc.subscribe(subject, {
          max: 2,
          callback: (_error, msg) => {
            received.push(msg);
            if (received.length === 2) resolve();
          },
        });
      });
      nc.publish(subject, 'with', { headers: toNatsHeaders(envelope) });
      nc.publish(subject, 'without');
      await done;
      const [withHeaders, without] = received as [Msg, Msg];
      // If nats.js changes how it keeps a message, readHeaders falls back to msg.headers: this says so.
      assert.ok(withHeaders instanceof MsgImpl && typeof withHeaders._msg.hdr === 'number', 'the fast path applies');
      assert.deepEqual(readHeaders(withHeaders).headers, envelope);
      assert.deepEqual(readHeaders(withHeaders).headers, fromNatsHeaders(withHeaders.headers));
      assert.deepEqual(readHeaders(without), {
        headers: {},
        claim: undefined,
        code: 0,
        body: without.data,
        framed: false,
      });
      assert.equal(new TextDecoder().decode(withHeaders.data), 'with', 'the body is untouched');
    } finally {
      await nc.close();
    }
  });
});
