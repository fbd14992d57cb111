import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveDeadline } from '../../src/policies/timeout.ts';

const now = 1_000_000;
const none = Number.POSITIVE_INFINITY;

describe('deadlines', () => {
  it('the node default when nothing nearer says otherwise', () => {
    assert.equal(resolveDeadline({ now, defaultTimeoutMs: 5000, inherited: none }), now + 5000);
  });

  it("the contract's timeout wins over the default, the call's over both", () => {
    assert.equal(resolveDeadline({ now, contractTimeoutMs: 800, defaultTimeoutMs: 5000, inherited: none }), now + 800);
    assert.equal(
      resolveDeadline({ now, callTimeoutMs: 9000, contractTimeoutMs: 800, defaultTimeoutMs: 5000, inherited: none }),
      now + 9000,
      "a call may ask for longer than its contract's timeout",
    );
  });

  it('a timeout of 0 is a timeout, not a missing one', () => {
    assert.equal(resolveDeadline({ now, callTimeoutMs: 0, defaultTimeoutMs: 5000, inherited: none }), now);
    assert.equal(resolveDeadline({ now, contractTimeoutMs: 0, defaultTimeoutMs: 5000, inherited: none }), now);
  });

  it('an explicit deadline earlier than the timeout wins; a later one does not', () => {
    assert.equal(resolveDeadline({ now, callDeadline: now + 100, defaultTimeoutMs: 5000, inherited: none }), now + 100);
    assert.equal(
      resolveDeadline({ now, callDeadline: now + 60_000, defaultTimeoutMs: 5000, inherited: none }),
      now + 5000,
    );
  });

  it('the deadline of the request being handled bounds every call made for it', () => {
    assert.equal(
      resolveDeadline({ now, callTimeoutMs: 9000, defaultTimeoutMs: 5000, inherited: now + 250 }),
      now + 250,
    );
    assert.equal(
      resolveDeadline({ now, callDeadline: now + 400, defaultTimeoutMs: 5000, inherited: now + 250 }),
      now + 250,
    );
    assert.equal(resolveDeadline({ now, defaultTimeoutMs: 100, inherited: now + 250 }), now + 100);
  });

  it('an inherited deadline already past stays past: the call fails rather than getting fresh time', () => {
    assert.equal(resolveDeadline({ now, defaultTimeoutMs: 5000, inherited: now - 10 }), now - 10);
  });
});
