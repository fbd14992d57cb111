import { sql } from 'kysely';
import type { Database } from './database.ts';
import { installInServiceDatabase } from './mysql.ts';
import { installInServiceSchema } from './service-schema.ts';

/**
 * Leases of a service's cluster schedules (`every` in @chassis/core), in `"<service>".chassis_leases`: the
 * holder of a schedule's lease runs it; the others skip their turn. A holder keeps its lease by taking it
 * again each turn; one that stops (a crash, a drain) lets it lapse at `expires_at`, and the next instance
 * to try takes it. The server's clock decides, so the nodes' clocks need not agree.
 */

const TABLE = 'chassis_leases';

/** Creates the service's lease table if it is missing; safe from several nodes at once. */
export async function installLeases(db: Database, service: string): Promise<void> {
  if (db.kind === 'mysql') {
    await installInServiceDatabase(db, service, [
      `create table if not exists ${TABLE} (
        name varchar(255) not null primary key,
        holder varchar(255) not null,
        expires_at datetime(6) not null
      ) engine = InnoDB`,
    ]);
    return;
  }
  await installInServiceSchema(db, service, [
    sql`create table if not exists ${sql.id(service, TABLE)} (
      name text primary key,
      holder text not null,
      expires_at timestamptz not null
    )`,
  ]);
}

/**
 * Takes the lease `name` for `holder` until `ttlMs` from now, or keeps it if `holder` has it: true. False
 * while another holder's lease runs. One statement, committed alone: two nodes trying at once get one
 * answer each, and only one of them true.
 */
export async function takeLease(
  db: Database,
  service: string,
  name: string,
  holder: string,
  ttlMs: number,
): Promise<boolean> {
  const table = sql.id(service, TABLE);
  if (db.kind === 'mysql') return takeMysqlLease(db, table, name, holder, ttlMs);
  const taken = await sql<{ holder: string }>`
    insert into ${table} as lease (name, holder, expires_at)
    values (${name}, ${holder}, clock_timestamp() + make_interval(secs => ${ttlMs / 1000}))
    on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at
      where lease.holder = excluded.holder or lease.expires_at < clock_timestamp()
    returning holder`.execute(db.kysely);
  return taken.rows.length === 1;
}

/**
 * MariaDB/MySQL: `on duplicate key update` has no `where`, so the row is read and locked first (`for
 * update`), then taken if it is free, ours or lapsed. Two nodes inserting the first row at once: one gets
 * the duplicate key (`CONFLICT`), and its answer is false.
 */
async function takeMysqlLease(
  db: Database,
  table: ReturnType<typeof sql.id>,
  name: string,
  holder: string,
  ttlMs: number,
): Promise<boolean> {
  const expires = sql`current_timestamp(6) + interval ${Math.round(ttlMs * 1000)} microsecond`;
  try {
    // Read committed: no gap lock on a missing row, so two first takers do not deadlock — the second
    // waits for the first's insert and gets the duplicate key.
    return await db.kysely
      .transaction()
      .setIsolationLevel('read committed')
      .execute(async (trx) => {
        const current = await sql<{ holder: string; lapsed: number }>`
        select holder, expires_at < current_timestamp(6) as lapsed from ${table} where name = ${name} for update`.execute(
          trx,
        );
        const row = current.rows[0];
        if (!row) {
          await sql`insert into ${table} (name, holder, expires_at) values (${name}, ${holder}, ${expires})`.execute(
            trx,
          );
          return true;
        }
        if (row.holder !== holder && Number(row.lapsed) !== 1) return false;
        await sql`update ${table} set holder = ${holder}, expires_at = ${expires} where name = ${name}`.execute(trx);
        return true;
      });
  } catch (error) {
    if ((error as { code?: unknown }).code === 'CONFLICT') return false;
    throw error;
  }
}
