import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '@chassis/core';

describe('logger', () => {
  it('writes JSON lines with UTC time, node, version and commit, and redacts secrets', () => {
    const lines: string[] = [];
    const log = createLogger({
      nodeId: 'n1',
      version: '1.4.0',
      commit: '3e1a9c2',
      destination: { write: (line) => lines.push(line) },
    });
    log.info({ password: 'alice-password', headers: { authorization: 'Bearer abc', accept: 'json' } }, 'logging in');
    const entry = JSON.parse(lines[0]!);
    assert.equal(entry.level, 'info');
    assert.match(entry.time, /Z$/);
    assert.equal(entry.node, 'n1');
    assert.equal(entry.version, '1.4.0');
    assert.equal(entry.commit, '3e1a9c2');
    assert.equal(entry.password, '[redacted]');
    assert.equal(entry.headers.authorization, '[redacted]');
    assert.equal(entry.headers.accept, 'json');
    assert.ok(!lines[0]!.includes('alice-password'));
  });
});
