/**
 * What follows a statement that carried its transaction's COMMIT (`committing`): the one decision
 * PostgreSQL's connections (prepared-statements.ts) and PGlite's (pglite-prepared.ts) both take, each
 * then doing it on its own wire.
 *
 * The carrier either went through, COMMIT and all (`committed`: the transaction is over), or failed
 * (`failed`): the statement failed and the server skipped the COMMIT, which leaves the transaction open
 * and aborted, or the server refused the COMMIT, which ended it. The two failures cannot be told apart
 * by what comes next, and need not be: a ROLLBACK ends the first and does nothing in the second.
 *
 * PostgreSQL's own rule decides the failed case: COMMIT in an aborted transaction is a ROLLBACK, its
 * command tag says so, and Kysely then fails the commit (`AbortedTransactionError`) and hands the
 * connection back without a rollback of its own. So the ROLLBACK must reach the server here, or the
 * connection would go back to its pool still in the aborted transaction, and fail whoever comes next.
 *
 * A statement after the carrier is refused, never sent: after a COMMIT that went through (or was
 * refused) it would run outside any transaction, and committing it alone is what the caller did not
 * ask for. The outcome stays until the transaction's end is asked for, so that a commit after the
 * refusal still learns that nothing committed.
 */

/** How the statement that carried its transaction's COMMIT went. */
export type CarriedOutcome = 'committed' | 'failed';

/** What a connection is asked next: transaction control as Kysely sends it, or any other statement. */
export type NextCommand = 'begin' | 'commit' | 'rollback' | 'statement';

export type AfterCarrier =
  /** Nothing carried (or a new transaction after a committed one): run the command as usual. */
  | { readonly do: 'run' }
  /** The transaction committed: answer the command with COMMIT, sending nothing. */
  | { readonly do: 'answer'; readonly command: 'COMMIT' }
  /**
   * The transaction may be open and aborted: send ROLLBACK first, then answer `ROLLBACK` (a `commit` or
   * `rollback`) or run the command (a `begin`, on a connection whose last transaction was never ended).
   */
  | { readonly do: 'roll back'; readonly afterwards: 'answer' | 'run' }
  /** Refuse the command (`INTERNAL`): nothing runs after a statement that carried its COMMIT. */
  | { readonly do: 'refuse'; readonly reason: string };

/**
 * What to do with `next` after a carrier that went `outcome` (undefined: none is pending), and the
 * outcome still pending afterwards.
 */
export function afterCarriedCommit(
  outcome: CarriedOutcome | undefined,
  next: NextCommand,
): { readonly action: AfterCarrier; readonly pending: CarriedOutcome | undefined } {
  if (outcome === undefined) return { action: RUN, pending: undefined };
  if (next === 'statement') {
    const reason =
      outcome === 'committed'
        ? 'The transaction committed with its last statement; it takes no statement after it'
        : 'The transaction failed at its last statement, which carried its COMMIT; it takes no statement after it, only its rollback';
    return { action: { do: 'refuse', reason }, pending: outcome };
  }
  if (outcome === 'failed') return { action: next === 'begin' ? ROLL_BACK_AND_RUN : ROLL_BACK, pending: undefined };
  // Committed: a new transaction runs as usual. A commit or a rollback is answered with what the
  // transaction did; a rollback has nothing left to undo (and refused, it would make Kysely discard the
  // connection — PGlite's only one).
  if (next === 'begin') return { action: RUN, pending: undefined };
  return { action: ANSWER_COMMIT, pending: undefined };
}

/** The next command as `afterCarriedCommit` takes it, from the text Kysely sent. */
export function nextCommand(text: string): NextCommand {
  return text === 'begin' || text === 'commit' || text === 'rollback' ? text : 'statement';
}

const RUN: AfterCarrier = { do: 'run' };
const ANSWER_COMMIT: AfterCarrier = { do: 'answer', command: 'COMMIT' };
const ROLL_BACK: AfterCarrier = { do: 'roll back', afterwards: 'answer' };
const ROLL_BACK_AND_RUN: AfterCarrier = { do: 'roll back', afterwards: 'run' };
