import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChassisError, defineError } from '@chassis/core';
import type { Kysely } from 'kysely';
import { type AnyTables, type Database, quoteIdentifier, sql } from './database.ts';
import { type MysqlSession, useServiceDatabase, withMysqlLock } from './mysql.ts';

/**
 * Per-service migrations. Each service owns a schema named after it and a folder of `.sql` files,
 * applied in name order (`001_orders.sql`, `002_fees.sql`, …) when its node starts.
 *
 * Each file runs in its own transaction, under a transaction-level advisory lock per service, with the
 * service's schema first on the search path: two nodes starting at once apply each file once, and a
 * file that fails leaves nothing of itself behind (PostgreSQL DDL is transactional) and stops the start
 * with an error naming the service and the file. A file already applied is recorded with its checksum;
 * editing it afterwards is refused, since the databases that ran the old text would differ from new ones.
 */
export const MigrationFailed = defineError('MIGRATION_FAILED', { status: 500, retryable: false });

export interface MigrationsSpec {
  /** The service, and its schema. */
  service: string;
  /** The folder of `.sql` files: a path, or a `file:` URL (`new URL('./migrations', import.meta.url)`). */
  folder: string | URL;
}

export interface MigrationReport {
  service: string;
  applied: string[];
  alreadyApplied: string[];
}

const TABLE = 'chassis_migrations';

export async function migrate(db: Database, spec: MigrationsSpec): Promise<MigrationReport> {
  const folder = typeof spec.folder === 'string' ? spec.folder : fileURLToPath(spec.folder);
  const files = await listMigrations(spec.service, folder);
  const schema = quoteIdentifier(spec.service);
  const report: MigrationReport = { service: spec.service, applied: [], alreadyApplied: [] };
  if (db.kind === 'mysql') {
    await withMysqlLock(db, `chassis:migrate:${spec.service}`, (session) =>
      migrateMysql(db, session, spec.service, folder, files, report),
    );
    return report;
  }

  await locked(db, spec.service, async (trx) => {
    await sql.raw(`create schema if not exists ${schema}`).execute(trx);
    await sql
      .raw(
        `create table if not exists ${schema}.${TABLE} (name text primary key, checksum text not null, applied_at timestamptz not null default now())`,
      )
      .execute(trx);
  });

  for (const file of files) {
    const text = await readFile(join(folder, file), 'utf8');
    const checksum = createHash('sha256').update(text).digest('hex');
    await locked(db, spec.service, async (trx) => {
      const done = await sql<{
        checksum: string;
      }>`select checksum from ${sql.id(spec.service, TABLE)} where name = ${file}`.execute(trx);
      const previous = done.rows[0];
      if (previous) {
        if (previous.checksum !== checksum) {
          throw MigrationFailed(
            `Migration ${file} of service "${spec.service}" was changed after it was applied; add a new migration instead of editing it`,
            { service: spec.service, file },
          );
        }
        report.alreadyApplied.push(file);
        return;
      }
      await sql.raw(`set local search_path to ${schema}, public`).execute(trx);
      try {
        await sql.raw(text).execute(trx);
      } catch (error) {
        throw MigrationFailed(
          `Migration ${file} of service "${spec.service}" failed and was rolled back: ${(error as Error).message}`,
          { service: spec.service, file, folder },
        );
      }
      await sql`insert into ${sql.id(spec.service, TABLE)} (name, checksum) values (${file}, ${checksum})`.execute(trx);
      report.applied.push(file);
    });
  }
  return report;
}

/**
 * MariaDB/MySQL: the same files and records, under the service's `GET_LOCK`, in the service's database
 * (created if missing). Each file runs in a transaction, which keeps a file of data (seed rows) all or
 * nothing; DDL commits at once in MySQL, so a file that fails after a `create table` keeps the table — it
 * is not recorded and runs again at the next start: write such files with `if not exists`.
 */
async function migrateMysql(
  db: Database,
  session: MysqlSession,
  service: string,
  folder: string,
  files: string[],
  report: MigrationReport,
): Promise<void> {
  await useServiceDatabase(db, session, service);
  await session.query(
    `create table if not exists ${TABLE} (name varchar(255) primary key, checksum char(64) not null, applied_at datetime(6) not null default current_timestamp(6))`,
  );
  for (const file of files) {
    const text = await readFile(join(folder, file), 'utf8');
    const checksum = createHash('sha256').update(text).digest('hex');
    const [previous] = await session.query<{ checksum: string }>(`select checksum from ${TABLE} where name = ?`, [
      file,
    ]);
    if (previous) {
      if (previous.checksum !== checksum) {
        throw MigrationFailed(
          `Migration ${file} of service "${service}" was changed after it was applied; add a new migration instead of editing it`,
          { service, file },
        );
      }
      report.alreadyApplied.push(file);
      continue;
    }
    await session.query('start transaction');
    try {
      await session.query(text);
      await session.query(`insert into ${TABLE} (name, checksum) values (?, ?)`, [file, checksum]);
      await session.query('commit');
    } catch (error) {
      await session.query('rollback').catch(() => undefined);
      // A lost connection is not the file's fault: the start waits for the database and tries again.
      if (error instanceof ChassisError && error.retryable) throw error;
      throw MigrationFailed(
        `Migration ${file} of service "${service}" failed: ${(error as Error).message}. Its data changes were rolled back; schema changes before the failing statement stay (MariaDB/MySQL commits DDL at once), so write its statements to run again (create table if not exists …)`,
        { service, file, folder },
      );
    }
    report.applied.push(file);
  }
}

async function listMigrations(service: string, folder: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (error) {
    throw new ChassisError(
      'CONFIG',
      `The migrations folder of service "${service}" cannot be read: ${folder} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      { data: { service, folder } },
    );
  }
  return names.filter((name) => name.endsWith('.sql')).sort();
}

/** A transaction holding the service's migration lock: one migrator per service at a time, cluster-wide. */
function locked<T>(db: Database, service: string, work: (trx: Kysely<AnyTables>) => Promise<T>): Promise<T> {
  return db.transaction(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${`chassis:migrate:${service}`}))`.execute(trx);
    return work(trx);
  });
}
