import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RpcReply, Transport } from '@chassis/core/transport';
import { amqpTarget, memoryTarget, natsTarget, type TransportTarget } from '@chassis/testing';

/**
 * A reply's `sent`: the handler's work after its reply (the runtime ends the server span and the metrics
 * there). Every transport calls it exactly once, once the reply is on its way, whether the handler
 * answered at once or with a promise.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

for (const target of [memoryTarget(), await natsTarget(), await amqpTarget()] as TransportTarget[]) {
  describe(`[${target.name}] an RPC reply's sent`, { skip: target.skip }, () => {
    const suffix = randomBytes(4).toString('hex');
    const service = `reply-sent-${suffix}`;
    let server: Transport;
    let client: Transport;
    const calls: string[] = [];

    const reply = (text: string): RpcReply => ({
      headers: {},
      body: encoder.encode(text),
      sent: () => calls.push(text),
    });

    before(async () => {
      const make = target.newCluster();
      server = make();
      client = make();
      await server.connect();
      await client.connect();
      await server.serve(
        service,
        ({ action }) => (action === 'now' ? reply('now') : Promise.resolve().then(() => reply('later'))),
        { concurrency: 4 },
      );
    });

    after(async () => {
      await client.close();
      await server.close();
      // The durable queue a broker keeps for the service.
      await target.cleanup?.([suffix]);
    });

    for (const action of ['now', 'later']) {
      it(`a handler answering ${action === 'now' ? 'at once' : 'with a promise'}: the caller gets the reply, and sent runs once`, async () => {
        calls.length = 0;
        const answer = await client.request(
          service,
          action,
          { headers: {}, body: encoder.encode('{}') },
          { timeoutMs: 5000 },
        );
        assert.equal(decoder.decode(answer.body), action);
        // Over a broker the reply can reach the caller before the server has gone on to `sent`.
        for (let i = 0; i < 100 && calls.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        assert.deepEqual(calls, [action]);
      });
    }
  });
}
