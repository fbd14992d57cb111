import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ContentType,
  codecFor,
  codecOf,
  deadlineOf,
  decodeBody,
  encodeTimeoutMs,
  Header,
  newId,
  requestDeadlineOf,
  timeoutMsOf,
} from '../src/envelope.ts';
import { ChassisError } from '../src/errors.ts';

const message = (headers: Record<string, string>, body: Uint8Array = new Uint8Array(0)) => ({ headers, body });
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe('the envelope: bodies, content types and the time a request carries', () => {
  it('JSON is the default codec; nothing (an action with no answer) goes as null', () => {
    const json = codecFor('json');
    assert.equal(json.contentType, ContentType.json);
    assert.equal(text(json.encode(undefined)), 'null');
    assert.equal(text(json.encode({ symbol: 'BHP', quantity: 10 })), '{"symbol":"BHP","quantity":10}');
    assert.deepEqual(json.decode(json.encode({ a: [1, 'ü'] })), { a: [1, 'ü'] });
    assert.equal(codecOf(message({})), json, 'a message without content-type is JSON');
    assert.equal(codecOf(message({ [Header.contentType]: ContentType.json })), json);
  });

  it('MessagePack keeps plain maps on the wire, readable by any MessagePack reader', () => {
    const msgpack = codecFor('msgpack');
    assert.equal(msgpack.contentType, ContentType.msgpack);
    assert.notEqual(msgpack, codecFor('json'));
    const value = { symbol: 'BHP', quantity: 10, nested: { ok: true } };
    const bytes = msgpack.encode(value);
    // A MessagePack map (fixmap 0x8N or map16 0xde), not msgpackr's record extension (0xd4 0x72).
    assert.ok((bytes[0]! & 0xf0) === 0x80 || bytes[0] === 0xde, `starts with 0x${bytes[0]!.toString(16)}`);
    assert.deepEqual(msgpack.decode(bytes), value);
    assert.equal(codecOf(message({ [Header.contentType]: ContentType.msgpack })), msgpack);
    assert.deepEqual(decodeBody(message({ [Header.contentType]: ContentType.msgpack }, bytes)), value);
  });

  it('an unknown content type or an unreadable body is BAD_MESSAGE naming what was wrong', () => {
    assert.throws(
      () => codecOf(message({ [Header.contentType]: 'text/xml' })),
      (error: unknown) =>
        error instanceof ChassisError &&
        error.code === 'BAD_MESSAGE' &&
        error.message === 'Unsupported content-type "text/xml"; use application/json or application/msgpack',
    );
    assert.throws(
      () => decodeBody(message({}, new TextEncoder().encode('{"truncated":'))),
      (error: unknown) =>
        error instanceof ChassisError &&
        error.code === 'BAD_MESSAGE' &&
        error.message === 'The message body is not valid application/json' &&
        error.cause instanceof SyntaxError,
    );
    assert.throws(
      () => decodeBody(message({}, new Uint8Array([0x22, 0xff, 0x22]))),
      { code: 'BAD_MESSAGE' },
      'not UTF-8',
    );
  });

  it('timeout-ms is a count of milliseconds, 0 or more; anything else is as if it were absent', () => {
    const of = (value: string) => timeoutMsOf(message({ [Header.timeoutMs]: value }));
    assert.equal(of('150'), 150);
    assert.equal(of('0'), 0, 'no time left is still a value');
    for (const bad of ['', '   ', '-5', 'soon', 'Infinity', 'NaN'])
      assert.equal(of(bad), undefined, JSON.stringify(bad));
    assert.equal(timeoutMsOf(message({})), undefined);
  });

  it('a request’s deadline counts its timeout-ms from its arrival; an older node’s absolute deadline is the fallback', () => {
    assert.equal(requestDeadlineOf(message({ [Header.timeoutMs]: '250', [Header.deadline]: '5' }), 1_000), 1_250);
    assert.equal(requestDeadlineOf(message({ [Header.deadline]: '4200' }), 1_000), 4_200);
    assert.equal(requestDeadlineOf(message({ [Header.timeoutMs]: 'x', [Header.deadline]: '4200' }), 1_000), 4_200);
    assert.equal(requestDeadlineOf(message({}), 1_000), undefined);
    assert.equal(deadlineOf(message({ [Header.deadline]: 'tomorrow' })), undefined);
    assert.equal(deadlineOf(message({ [Header.deadline]: '1700000000000' })), 1_700_000_000_000);
  });

  it('the time left goes as whole milliseconds, rounded up, never negative', () => {
    assert.equal(encodeTimeoutMs(149.2), '150');
    assert.equal(encodeTimeoutMs(0), '0');
    assert.equal(encodeTimeoutMs(-30), '0');
  });

  it('message ids are random (version 4) UUIDs, each one new', () => {
    const ids = new Set<string>();
    // Past the 128 ids one draw of entropy serves, so a refill is crossed too.
    for (let i = 0; i < 1000; i++) {
      const id = newId();
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      ids.add(id);
    }
    assert.equal(ids.size, 1000);
  });
});
