import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TransportStatus } from '@chassis/core/transport';
import { StatusListeners } from '../../src/transports/shared/status.ts';

describe('StatusListeners', () => {
  it('tells listeners of each change, once, and forgets a removed listener', () => {
    const status = new StatusListeners('closed');
    const heard: TransportStatus[] = [];
    const remove = status.add((s) => heard.push(s));
    assert.equal(status.set('connected'), true);
    assert.equal(status.set('connected'), false, 'no change, nothing told');
    status.set('disconnected');
    remove();
    status.set('connected');
    assert.deepEqual(heard, ['connected', 'disconnected']);
    assert.equal(status.status, 'connected');
  });

  it('a listener that throws is reported and does not stop the others', () => {
    const reported: unknown[] = [];
    const status = new StatusListeners('closed', (error) => reported.push(error));
    const heard: TransportStatus[] = [];
    status.add(() => {
      throw new Error('listener bug');
    });
    status.add((s) => heard.push(s));
    status.set('connected');
    assert.deepEqual(heard, ['connected']);
    assert.equal((reported[0] as Error).message, 'listener bug');
  });

  it('nextChange resolves at the next change, or after its wait', async () => {
    const status = new StatusListeners('connected');
    const change = status.nextChange(10_000);
    status.set('disconnected');
    assert.equal(await change.changed, 'status');
    assert.equal(await status.nextChange(5).changed, 'timeout');
    const cancelled = status.nextChange(10_000);
    cancelled.cancel();
    status.set('connected'); // a cancelled waiter is not called, and keeps nothing alive
  });
});
