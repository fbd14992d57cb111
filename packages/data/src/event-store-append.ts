import type { RawBuilder } from 'kysely';
import { quoteIdentifier, sql } from './database.ts';
import { FixedStatement } from './fixed-statement.ts';

/**
 * The event store's append, as the statement this version sends and as the PL/pgSQL function earlier
 * versions call (still installed beside it for a rolling upgrade). The store (`event-store.ts`) chooses
 * the claim from the expected version and keeps one statement a claim.
 */

/** What an append returns of each event it wrote: what the store gave it; the rest the caller sent. */
export interface AppendedRow {
  position: number;
  version: number;
  txid: number;
  recorded_at: Date | string;
}

/** How an append claims its stream's row: the expected version, as the statement is chosen by it. */
export type Claim = 'any' | 'no_stream' | 'stream_exists' | 'version';

/**
 * The append for one way of claiming the stream: its row claimed (inserted, updated, or left alone when
 * the expected version does not hold: then nothing is appended and no row comes back), then the events
 * inserted with the version and `txid` the claim gave, and `channel` notified when there is one. See
 * `EventStore.appendStatement`.
 */
export function appendStatement(
  streams: RawBuilder<unknown>,
  events: RawBuilder<unknown>,
  channel: string | undefined,
  claim: Claim,
): FixedStatement<AppendedRow, [string, number, string, string]> {
  return new FixedStatement<AppendedRow, [string, number, string, string]>(4, (stream, count, batch, version) => {
    const claimed = {
      any: sql`insert into ${streams} as s (stream, version, txid) values (${stream}, ${count}::bigint, pg_current_xact_id())
          on conflict (stream) do update
            set version = s.version + excluded.version, txid = greatest(s.txid, excluded.txid), updated_at = now()
          returning s.version, s.txid`,
      no_stream: sql`insert into ${streams} as s (stream, version, txid) values (${stream}, ${count}::bigint, pg_current_xact_id())
          on conflict (stream) do nothing
          returning s.version, s.txid`,
      stream_exists: sql`update ${streams} as s
          set version = s.version + ${count}::bigint, txid = greatest(s.txid, pg_current_xact_id()), updated_at = now()
          where s.stream = ${stream}
          returning s.version, s.txid`,
      version: sql`update ${streams} as s
          set version = s.version + ${count}::bigint, txid = greatest(s.txid, pg_current_xact_id()), updated_at = now()
          where s.stream = ${stream} and s.version = cast(${version} as text)::bigint
          returning s.version, s.txid`,
    }[claim];
    // A select that nothing reads is not run: the notification is joined in (one row, whatever it says).
    const notified =
      channel === undefined ? sql`` : sql`, notified as (select pg_notify(${sql.lit(channel)}, '') from claimed)`;
    const joined = channel === undefined ? sql`` : sql`, (select count(*) from notified) as notifications`;
    return sql`
        with claimed as (${claimed}),
        appended as (
          insert into ${events} (txid, stream, version, id, type, data, metadata)
          select claimed.txid, ${stream}, claimed.version - ${count}::bigint + e.n,
            (e.value->>'id')::uuid, e.value->>'type', e.value->'data', e.value->'metadata'
          from claimed, jsonb_array_elements(cast(${batch} as text)::jsonb) with ordinality as e (value, n)
          order by e.n
          returning position, version, txid, recorded_at
        )${notified}
        select position, version, txid::text::bigint as txid, recorded_at from appended${joined}`;
  });
}

/**
 * The append as a function in the service's schema, as nodes of earlier versions call it (this one sends
 * the same claim and insert as one statement: `appendStatement`), kept so that they go on appending
 * beside it during a rolling upgrade.
 *
 * It claims the stream's row according to the expected version (`'any'`, `'no_stream'`,
 * `'stream_exists'`, or a version as text) and returns no rows when the claim fails — the caller then
 * reports the actual version. The claim runs first, so the transaction has its id before its events
 * take their positions. `txid` becomes the greater of the transaction's id and the stream's last one.
 */
export function appendFunction(service: string, streamsTable: string, eventsTable: string): RawBuilder<unknown> {
  const schema = quoteIdentifier(service);
  const streams = `${schema}.${streamsTable}`;
  return sql.raw(`create or replace function ${schema}.chassis_append(
  p_stream text, p_expected text, p_events jsonb, p_channel text
) returns setof ${schema}.${eventsTable} language plpgsql as $chassis$
declare
  v_count bigint := jsonb_array_length(p_events);
  v_version bigint;
  v_txid xid8;
begin
  if p_expected = 'any' then
    insert into ${streams} as s (stream, version, txid) values (p_stream, v_count, pg_current_xact_id())
      on conflict (stream) do update
        set version = s.version + excluded.version, txid = greatest(s.txid, excluded.txid), updated_at = now()
      returning s.version, s.txid into v_version, v_txid;
  elsif p_expected = 'no_stream' then
    insert into ${streams} as s (stream, version, txid) values (p_stream, v_count, pg_current_xact_id())
      on conflict (stream) do nothing
      returning s.version, s.txid into v_version, v_txid;
  elsif p_expected = 'stream_exists' then
    update ${streams} as s
      set version = s.version + v_count, txid = greatest(s.txid, pg_current_xact_id()), updated_at = now()
      where s.stream = p_stream
      returning s.version, s.txid into v_version, v_txid;
  else
    update ${streams} as s
      set version = s.version + v_count, txid = greatest(s.txid, pg_current_xact_id()), updated_at = now()
      where s.stream = p_stream and s.version = p_expected::bigint
      returning s.version, s.txid into v_version, v_txid;
  end if;
  if v_version is null then
    return;
  end if;
  if p_channel is not null then
    perform pg_notify(p_channel, '');
  end if;
  return query
    insert into ${schema}.${eventsTable} (txid, stream, version, id, type, data, metadata)
    select v_txid, p_stream, v_version - v_count + e.n, (e.value->>'id')::uuid, e.value->>'type', e.value->'data', e.value->'metadata'
    from jsonb_array_elements(p_events) with ordinality as e (value, n)
    order by e.n
    returning *;
end
$chassis$`);
}
