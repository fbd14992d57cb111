import { sql } from 'kysely';
import type { Database } from './database.ts';
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
  db.requireFeature(`Cluster-wide schedules (leases) of service "${service}"`);
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
  const taken = await sql<{ holder: string }>`
    insert into ${table} as lease (name, holder, expires_at)
    values (${name}, ${holder}, clock_timestamp() + make_interval(secs => ${ttlMs / 1000}))
    on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at
      where lease.holder = excluded.holder or lease.expires_at < clock_timestamp()
    returning holder`.execute(db.kysely);
  return taken.rows.length === 1;
}
