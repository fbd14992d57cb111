import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { servers, skipUnlessUp } from '@chassis/testing';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { readDirectly } from '../../src/transports/nats/read-direct.ts';
import { natsTransport } from '../../src/transports/nats/transport.ts';

const skipWithoutNats = await skipUnlessUp('nats');

/** For a test where no callback may throw. */
const unexpected = (error: unknown): never => assert.fail(`unexpected failure: ${String(error)}`);

/** The connection's current socket. */
function socketOf(nc: NatsConnection): Socket {
  return (nc as unknown as { protocol: { transport: { socket: Socket } } }).protocol.transport.socket;
}

/**
 * Whether the socket is handing a read to its listeners right now: a message seen while it is was
 * parsed in the socket's callback, not later through nats.js's iterator.
 */
function watchReads(nc: NatsConnection): () => boolean {
  let reading = false;
  const socket = socketOf(nc);
  socket.prependListener('data', () => {
    reading = true;
  });
  socket.on('data', () => {
    reading = false;
  });
  return () => reading;
}

function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (check()) resolve();
      else if (Date.now() > end) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

describe('NATS socket read straight into the parser', { skip: skipWithoutNats }, () => {
  it('every message arrives, in order, whatever the reads it came in: one at a time and in bursts', async () => {
    const reader = await connect({ servers: servers.nats.url });
    const writer = await connect({ servers: servers.nats.url });
    try {
      assert.equal(readDirectly(reader, unexpected), true);
      assert.equal(readDirectly(reader, unexpected), true, 'twice is once');
      assert.equal(socketOf(reader).listenerCount('data'), 1);
      const reading = watchReads(reader);
      const subject = `read-direct.${randomBytes(4).toString('hex')}`;
      const seen: number[] = [];
      let inRead = 0;
      reader.subscribe(subject, {
        callback: (_error, msg: Msg) => {
          if (reading()) inRead++;
          seen.push(new DataView(msg.data.buffer, msg.data.byteOffset).getUint32(0));
        },
      });
      await reader.flush();
      let sent = 0;
      const send = (size: number) => {
        const body = Buffer.alloc(size);
        body.writeUInt32BE(sent++, 0);
        writer.publish(subject, body);
      };
      // One at a time, each read its own...
      for (let i = 0; i < 20; i++) {
        send(8);
        await writer.flush();
      }
      await until(() => seen.length === 20, 'the messages sent one at a time');
      assert.ok(inRead >= 19, `parsed in the socket's callback: ${inRead} of 20`);
      // ...then bursts larger than a read, split across reads at any byte, with reads coming while
      // earlier ones are still being handed to the parser.
      for (let burst = 0; burst < 20; burst++) {
        for (let i = 0; i < 200; i++) send(4 + ((i * 7919) % 3000));
        if (burst % 3 === 0) await writer.flush();
      }
      await writer.flush();
      await until(() => seen.length === sent, `${sent} messages`);
      assert.deepEqual(
        seen,
        Array.from({ length: sent }, (_, i) => i),
      );
    } finally {
      await writer.close();
      await reader.close();
    }
  });

  it('a subscription callback that throws is reported, and the connection reconnects and reads again', async () => {
    const reader = await connect({ servers: servers.nats.url, reconnectTimeWait: 50 });
    const writer = await connect({ servers: servers.nats.url });
    try {
      const failures: unknown[] = [];
      assert.equal(
        readDirectly(reader, (error) => failures.push(error)),
        true,
      );
      const subject = `read-direct.${randomBytes(4).toString('hex')}`;
      const seen: string[] = [];
      reader.subscribe(subject, {
        callback: (_error, msg: Msg) => {
          const text = msg.string();
          if (text === 'throw') throw new Error('a callback that throws');
          seen.push(text);
        },
      });
      await reader.flush();
      let reconnected = false;
      void (async () => {
        for await (const status of reader.status()) if (status.type === 'reconnect') reconnected = true;
      })();
      // The first read after setting up goes nats.js's way; this one straight to the parser.
      writer.publish(subject, 'before');
      await writer.flush();
      await until(() => seen.includes('before'), 'the message before');
      writer.publish(subject, 'throw');
      await writer.flush();
      await until(() => reconnected, 'the reconnect');
      assert.equal(failures.length, 1);
      assert.match(String(failures[0]), /a callback that throws/);
      // A new socket: read nats.js's way until set up again, as the transport does on each reconnect.
      assert.equal(readDirectly(reader, unexpected), true);
      // The reconnect is reported once the socket is up, not once the server has the subscription again:
      // a round trip on the reader's connection orders its SUB before the writer's messages.
      await reader.flush();
      for (let i = 0; i < 3; i++) {
        writer.publish(subject, `after ${i}`);
        await writer.flush();
      }
      await until(() => seen.length === 4, 'the messages after');
      assert.deepEqual(seen, ['before', 'after 0', 'after 1', 'after 2']);
    } finally {
      await writer.close();
      await reader.close();
    }
  });

  it('a connection not shaped as nats.js 3 shapes it is left to read its own way', () => {
    assert.equal(readDirectly({} as NatsConnection, unexpected), false);
    const debug = {
      protocol: {
        parser: { parse: () => undefined },
        transport: { done: false, yields: [], signal: {}, socket: {}, options: { debug: true } },
      },
    } as unknown as NatsConnection;
    assert.equal(readDirectly(debug, unexpected), false, 'with debug output on');
  });

  it("a transport's connection reads this way, and again on the new socket after a reconnect", async () => {
    const transport = natsTransport({ url: servers.nats.url });
    const writer = await connect({ servers: servers.nats.url });
    await transport.connect();
    try {
      const nc = (transport as unknown as { connection(): NatsConnection }).connection();
      const subject = `read-direct.${randomBytes(4).toString('hex')}`;
      let reading = watchReads(nc);
      let inRead = 0;
      let seen = 0;
      let lost = false;
      nc.subscribe(subject, {
        callback: () => {
          seen++;
          if (reading()) inRead++;
        },
      });
      await nc.flush();
      const sendOne = async () => {
        const before = seen;
        writer.publish(subject, 'x');
        await writer.flush();
        await until(() => seen > before, 'a message');
      };
      for (let i = 0; i < 5; i++) await sendOne();
      assert.ok(inRead >= 4, `before the reconnect, ${inRead} of 5 parsed in the socket's callback`);
      const reconnected = new Promise<void>((resolve) => {
        const stop = transport.onStatus((status) => {
          if (status !== 'connected') lost = true;
          else if (lost) {
            stop();
            resolve();
          }
        });
      });
      socketOf(nc).destroy();
      await reconnected;
      await nc.flush();
      reading = watchReads(nc);
      inRead = 0;
      for (let i = 0; i < 5; i++) await sendOne();
      assert.ok(inRead >= 4, `after the reconnect, ${inRead} of 5 parsed in the socket's callback`);
    } finally {
      await writer.close();
      await transport.close();
    }
  });
});
