/**
 * The part of a Kysely `ControlledTransaction` (from `db.kysely.startTransaction().execute()`) that
 * `rollbackIfOpen` needs, so this package does not depend on Kysely.
 */
export interface OpenableTransaction {
  readonly isCommitted: boolean;
  readonly isRolledBack: boolean;
  rollback(): { execute(): Promise<void> };
}

/**
 * For a test's `finally` after it opened a transaction by hand: rolls it back unless the test already
 * committed or rolled it back.
 *
 * Why every such test needs it: a failed assertion between `startTransaction` and `commit` otherwise
 * leaves the transaction open. Its pooled connection is never returned, so closing the pool waits for
 * ever and the file hangs until the runner's timeout; and while it is open, PostgreSQL's oldest running
 * transaction holds back every outbox relay and event-log reader on the server, other tests' included.
 *
 * A rollback that fails (the connection is already gone) is ignored: the test's own failure is the one
 * to report, and Kysely releases the connection either way.
 */
export async function rollbackIfOpen(trx: OpenableTransaction | undefined): Promise<void> {
  if (!trx || trx.isCommitted || trx.isRolledBack) return;
  await trx
    .rollback()
    .execute()
    .catch(() => undefined);
}
