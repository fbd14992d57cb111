import { ChassisError } from '@chassis/core';
import type { Kysely, RawBuilder } from 'kysely';
import { type AnyTables, type Database, quoteIdentifier, sql } from './database.ts';

/** One statement of an install, run in its transaction: a raw statement or an `indexIfMissing`. */
export interface InstallStep {
  execute(trx: Kysely<AnyTables>): Promise<unknown>;
}

/**
 * Creates the chassis's own tables (outbox, inbox, event store, sagas) in a service's schema. The DDL runs
 * under the same transaction-level advisory lock as the service's migrations (`migrations.ts` takes
 * `hashtext('chassis:migrate:<service>')`): two nodes starting at once, or one migrating while another
 * installs, never race on `create schema if not exists`, which is not safe to run concurrently by itself.
 */
export function installInServiceSchema(db: Database, service: string, statements: InstallStep[]): Promise<void> {
  return db.transaction(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${`chassis:migrate:${service}`}))`.execute(trx);
    await sql`create schema if not exists ${sql.id(service)}`.execute(trx);
    for (const statement of statements) await statement.execute(trx);
  });
}

/**
 * Creates an index unless one of its name is in the service's schema. `create index if not exists` alone
 * takes a SHARE lock on the table before it looks whether the index exists, so a node starting beside a
 * busy one would wait for every open transaction that wrote to the table (a handler in flight) — and every
 * write after it would queue behind that wait.
 */
export function indexIfMissing(service: string, index: string, create: RawBuilder<unknown>): InstallStep {
  return {
    async execute(trx) {
      if (await indexMissing(trx, service, index)) await create.execute(trx);
    },
  };
}

/**
 * Drops an index the service no longer uses, if it is there. Looked up first: a `drop index` locks its
 * table, and run every time it would wait for each open transaction on it.
 */
export function dropIndexIfPresent(service: string, index: string): InstallStep {
  return {
    async execute(trx) {
      if (!(await indexMissing(trx, service, index)))
        await sql`drop index if exists ${sql.id(service, index)}`.execute(trx);
    },
  };
}

/** Whether the service's schema has no index (or other relation) of this name; it takes no lock. */
async function indexMissing(trx: Kysely<AnyTables>, service: string, index: string): Promise<boolean> {
  const name = `${quoteIdentifier(service)}.${quoteIdentifier(index)}`;
  const found = await sql<{ oid: string | null }>`select to_regclass(${name})::text as oid`.execute(trx);
  return found.rows[0]?.oid === null;
}

/**
 * Runs an `alter table … add column` unless the table already has the column. `alter table` takes an
 * ACCESS EXCLUSIVE lock before it looks at any `if not exists`, so run every time it would wait for each
 * open transaction on the table, and every read and write after it would queue behind that wait.
 */
export function columnIfMissing(
  service: string,
  table: string,
  column: string,
  alter: RawBuilder<unknown>,
): InstallStep {
  return {
    async execute(trx) {
      const name = `${quoteIdentifier(service)}.${quoteIdentifier(table)}`;
      const found = await sql<{ present: boolean }>`select exists (
        select 1 from pg_attribute
        where attrelid = to_regclass(${name}) and attname = ${column} and not attisdropped
      ) as present`.execute(trx);
      if (!found.rows[0]?.present) await alter.execute(trx);
    },
  };
}

/**
 * Sets a table's storage parameters (`alter table … set (…)`) unless it already has every one of them
 * (`options` as PostgreSQL lists them in `pg_class.reloptions`, e.g. `autovacuum_vacuum_threshold=1000`,
 * which is also how `alter table … set` takes them): looked up first, so that a node's start writes no
 * catalog row and invalidates no plan when nothing changes. The options are the caller's literals, not
 * input.
 */
export function tableOptionsUnlessSet(service: string, table: string, options: readonly string[]): InstallStep {
  return {
    async execute(trx) {
      const name = `${quoteIdentifier(service)}.${quoteIdentifier(table)}`;
      const found = await sql<{ present: boolean }>`select coalesce((
        select reloptions @> ${options as string[]}::text[] from pg_class where oid = to_regclass(${name})
      ), false) as present`.execute(trx);
      if (!found.rows[0]?.present)
        await sql`alter table ${sql.raw(name)} set (${sql.raw(options.join(', '))})`.execute(trx);
    },
  };
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
