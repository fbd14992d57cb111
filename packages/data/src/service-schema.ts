import { ChassisError } from '@chassis/core';
import type { RawBuilder } from 'kysely';
import { type Database, sql } from './database.ts';

/**
 * Creates the chassis's own tables (outbox, inbox) in a service's schema. The DDL runs under the same
 * transaction-level advisory lock as the service's migrations (`migrations.ts` takes
 * `hashtext('chassis:migrate:<service>')`): two nodes starting at once, or one migrating while another
 * installs, never race on `create schema if not exists`, which is not safe to run concurrently by itself.
 */
export function installInServiceSchema(
  db: Database,
  service: string,
  statements: RawBuilder<unknown>[],
): Promise<void> {
  return db.transaction(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${`chassis:migrate:${service}`}))`.execute(trx);
    await sql`create schema if not exists ${sql.id(service)}`.execute(trx);
    for (const statement of statements) await statement.execute(trx);
  });
}

/** SQLSTATEs meaning a table or its schema is not there: the install step was skipped. */
export function isMissingRelation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '42P01' || code === '3F000';
}

/** A retention given to a prune: a number of milliseconds, not a mistake that would delete everything. */
export function checkRetention(olderThanMs: number): void {
  if (!Number.isFinite(olderThanMs) || olderThanMs < 0) {
    throw new ChassisError('CONFIG', `olderThanMs must be a number of milliseconds ≥ 0, not ${olderThanMs}`);
  }
}
