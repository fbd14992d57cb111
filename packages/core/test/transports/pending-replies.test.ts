import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import { ChassisError, transportError } from '../../src/errors.ts';
import { PendingReplies } from '../../src/transports/shared/pending-replies.ts';

async function rejection(promise: Promise<unknown>): Promise<ChassisError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ChassisError, `a ChassisError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a rejection');
}

describe('PendingReplies', () => {
  afterEach(() => mock.timers.reset());

  it('settles a request by the token it was sent with, once', async () => {
    const replies = new PendingReplies<string>();
    const sent: string[] = [];
    const first = replies.open('orders', 'place', 1_000, (token) => void sent.push(token));
    const second = replies.open('orders', 'cancel', 1_000, (token) => void sent.push(token));
    assert.equal(sent.length, 2);
    assert.notEqual(sent[0], sent[1], 'each request has its own token');
    assert.equal(replies.size, 2);

    assert.equal(replies.resolve(sent[1]!, 'cancelled'), true);
    assert.equal(replies.resolve(sent[0]!, 'placed'), true);
    assert.deepEqual(await Promise.all([first, second]), ['placed', 'cancelled']);
    assert.equal(replies.resolve(sent[0]!, 'again'), false, 'a second reply finds nothing');
    assert.equal(replies.size, 0);
  });

  it('rejects with TIMEOUT carrying {service, action, timeoutMs} when no reply comes in time', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const replies = new PendingReplies<string>();
    let token = '';
    const waiting = replies.open('orders', 'place', 250, (t) => {
      token = t;
    });
    mock.timers.tick(249);
    assert.equal(replies.has(token), true);
    mock.timers.tick(1);
    const error = await rejection(waiting);
    assert.equal(error.code, 'TIMEOUT');
    assert.deepEqual(error.data, { service: 'orders', action: 'place', timeoutMs: 250 });
    assert.equal(replies.resolve(token, 'late'), false, 'a late reply is dropped');
  });

  it('a reply stops the timer: the request never times out afterwards', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const replies = new PendingReplies<string>();
    const waiting = replies.open('orders', 'place', 100, (token) => void replies.resolve(token, 'fast'));
    mock.timers.tick(1_000);
    assert.equal(await waiting, 'fast');
  });

  it('a send that throws or rejects fails its request: a ChassisError as it is, anything else as TRANSPORT', async () => {
    const replies = new PendingReplies<string>();
    const badMessage = new ChassisError('BAD_MESSAGE', 'header too large');
    assert.equal(
      await rejection(
        replies.open('orders', 'place', 1_000, () => {
          throw badMessage;
        }),
      ),
      badMessage,
    );
    const thrown = await rejection(
      replies.open('orders', 'place', 1_000, () => {
        throw new Error('socket closed');
      }),
    );
    assert.equal(thrown.code, 'TRANSPORT');
    assert.match(thrown.message, /orders\.place.*socket closed/);
    const rejected = await rejection(
      replies.open('orders', 'place', 1_000, async () => Promise.reject(new Error('no channel'))),
    );
    assert.equal(rejected.code, 'TRANSPORT');
    assert.match(rejected.message, /no channel/);
    // Sent later (a batch handed over at the end of the turn) and refused then: failed by its token.
    let later!: string;
    const deferred = replies.open('orders', 'place', 1_000, (token) => {
      later = token;
    });
    replies.fail(later, new Error('max_payload size exceeded'));
    const refused = await rejection(deferred);
    assert.equal(refused.code, 'TRANSPORT');
    assert.match(refused.message, /orders\.place.*max_payload/);
    assert.equal(replies.size, 0, 'nothing is left waiting, and no timer runs');
  });

  it('failAll rejects every waiting request, with one error or one made per request', async () => {
    const replies = new PendingReplies<string>();
    const tokens: string[] = [];
    const a = replies.open('orders', 'place', 1_000, (token) => void tokens.push(token));
    const b = replies.open('accounts', 'debit', 1_000, (token) => void tokens.push(token));
    const closed = transportError('The transport was closed while the request waited');
    replies.failAll(closed);
    assert.equal(await rejection(a), closed);
    assert.equal(await rejection(b), closed);
    assert.equal(replies.resolve(tokens[0]!, 'late'), false);

    const c = replies.open('orders', 'place', 1_000, () => undefined);
    replies.failAll((pending) =>
      transportError(`Request to ${pending.service}.${pending.action} failed: connection lost`),
    );
    const lost = await rejection(c);
    assert.equal(lost.code, 'TRANSPORT');
    assert.equal(lost.data, undefined);
    assert.match(lost.message, /orders\.place failed: connection lost/);
  });

  it('reads timeouts and failed sends as its owner says, when told', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    class LibraryTimeout extends Error {}
    const replies = new PendingReplies<string, Error>({
      timedOut: ({ action, timeoutMs }) => new LibraryTimeout(`${action} after ${timeoutMs} ms`),
      notSent: (_request, error) => (error instanceof Error ? error : new Error(String(error))),
    });
    const waiting = replies.open('jetstream', 'orders.placed', 250, () => undefined);
    mock.timers.tick(250);
    const timedOut = await waiting.catch((error: unknown) => error);
    assert.ok(timedOut instanceof LibraryTimeout);
    assert.equal(timedOut.message, 'orders.placed after 250 ms');
    const closed = new Error('connection closed');
    const notSent = await replies
      .open('jetstream', 'orders.placed', 250, () => {
        throw closed;
      })
      .catch((error: unknown) => error);
    assert.equal(notSent, closed, 'passed on as it is, not as TRANSPORT');
  });
});
