import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { afterCarriedCommit, nextCommand } from '../src/carried-commit.ts';

describe('what follows a statement that carried its COMMIT', () => {
  it('nothing carried: every command runs as usual', () => {
    for (const next of ['begin', 'commit', 'rollback', 'statement'] as const) {
      assert.deepEqual(afterCarriedCommit(undefined, next), { action: { do: 'run' }, pending: undefined }, next);
    }
  });

  it('after a failed carrier, a commit rolls back at the server and is answered ROLLBACK, as PostgreSQL answers', () => {
    assert.deepEqual(afterCarriedCommit('failed', 'commit'), {
      action: { do: 'roll back', afterwards: 'answer' },
      pending: undefined,
    });
  });

  it('after a failed carrier, a rollback reaches the server: the transaction may be open, aborted', () => {
    assert.deepEqual(afterCarriedCommit('failed', 'rollback'), {
      action: { do: 'roll back', afterwards: 'answer' },
      pending: undefined,
    });
  });

  it('after a failed carrier never ended, a new transaction begins once the old one is rolled back', () => {
    assert.deepEqual(afterCarriedCommit('failed', 'begin'), {
      action: { do: 'roll back', afterwards: 'run' },
      pending: undefined,
    });
  });

  it('a statement after the carrier is refused, whatever its outcome, and the outcome stays for the end', () => {
    for (const outcome of ['committed', 'failed'] as const) {
      const { action, pending } = afterCarriedCommit(outcome, 'statement');
      assert.equal(action.do, 'refuse', outcome);
      assert.equal(pending, outcome, 'a commit after the refusal still learns what happened');
    }
    // The refused statement changes nothing: a commit after it still rolls back.
    assert.deepEqual(afterCarriedCommit(afterCarriedCommit('failed', 'statement').pending, 'commit').action, {
      do: 'roll back',
      afterwards: 'answer',
    });
  });

  it('after a carrier that committed, a commit or a rollback is answered COMMIT, nothing sent; a begin runs', () => {
    for (const next of ['commit', 'rollback'] as const) {
      assert.deepEqual(
        afterCarriedCommit('committed', next),
        { action: { do: 'answer', command: 'COMMIT' }, pending: undefined },
        next,
      );
    }
    assert.deepEqual(afterCarriedCommit('committed', 'begin'), { action: { do: 'run' }, pending: undefined });
  });

  it('reads transaction control as Kysely sends it; anything else is a statement', () => {
    assert.equal(nextCommand('begin'), 'begin');
    assert.equal(nextCommand('commit'), 'commit');
    assert.equal(nextCommand('rollback'), 'rollback');
    assert.equal(nextCommand('select 1'), 'statement');
  });
});
