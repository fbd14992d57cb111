import { setTimeout as sleep } from 'node:timers/promises';
import type { RawBuilder } from 'kysely';
import type { Database, DatabaseSession } from './database.ts';

/**
 * One holder at a time across the cluster for a named job (a service's outbox relay), for as long as
 * the holder lives: the leader. On PostgreSQL it is a session-level advisory lock held by a connection of
 * the leader's own; the server releases it the moment that connection ends — a drain, a crash, a killed
 * process, a terminated backend — and one of the holders waiting takes it within a quarter of a second
 * (they ask every `TRY_EVERY_MS`). On PGlite, one process's database, the holders are in this process,
 * and take turns through a queue.
 *
 * The leader runs its statements on its own session (`execute`), each committed alone: it needs no
 * transaction to exclude the others, so its work costs only the statements themselves.
 */
export interface Leadership {
  /** Runs one statement as the leader: on its own session (PostgreSQL), or the database's (PGlite). */
  execute<R>(query: RawBuilder<R>): Promise<R[]>;
  /** LISTENs on the leader's session (PostgreSQL) or the database (PGlite), until `close`. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<void>;
  /** Resolves when the leadership ends without `close` (its connection was lost). */
  readonly lost: Promise<void>;
  /** Gives the leadership up: the next holder waiting takes it. */
  close(): Promise<void>;
}

/**
 * How often a holder that does not lead asks for the lock (`pg_try_advisory_lock`): the longest a
 * leader's successor waits after the leader's connection ends. Not a blocking `pg_advisory_lock`: a
 * statement waiting in it holds its snapshot, and with it the whole database's horizon, for as long as it
 * waits — no dead row of the last seconds could be pruned or its index entries killed anywhere, so every
 * outbox look read the rows sent since (a look grew from 0.1 to 2.8 ms in 20 s on the bank), and every
 * hot row's chain of versions grew. Nor a blocking wait with a `lock_timeout`: each timeout is an ERROR
 * in the server's log.
 */
const TRY_EVERY_MS = 250;
/** What the leader's statements wait at most for a lock (a row the service is writing) before failing. */
const STATEMENT_LOCK_WAIT_MS = 10_000;

/**
 * Waits until this process leads `name` (the lock `[scope, name]`, e.g. `['chassis:outbox', service]`),
 * and resolves to the leadership; rejects if `signal` aborts first or the database cannot be reached.
 * `settings` are set on the leader's own session (PostgreSQL: `set_config` names and values, for the
 * leader's statements only); PGlite's one connection is everyone's, so they are not set there.
 */
export async function lead(
  db: Database,
  [scope, name]: [string, string],
  signal: AbortSignal,
  settings: Readonly<Record<string, string>> = {},
): Promise<Leadership> {
  const session = db.openSession();
  if (!session) return leadInProcess(db, `${scope}\u0000${name}`, signal);
  return leadOnSession(db, await session, scope, name, signal, settings);
}

async function leadOnSession(
  db: Database,
  session: DatabaseSession,
  scope: string,
  name: string,
  signal: AbortSignal,
  settings: Readonly<Record<string, string>>,
): Promise<Leadership> {
  const abandon = () => void session.close();
  signal.addEventListener('abort', abandon, { once: true });
  try {
    // Statements alone, read committed whatever the server's default: each sees what committed before it.
    const all: [string, string][] = [
      ['default_transaction_isolation', 'read committed'],
      ['lock_timeout', `${STATEMENT_LOCK_WAIT_MS}ms`],
      ...Object.entries(settings),
    ];
    await session.query(
      `select ${all.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, false)`).join(', ')}`,
      all.flat(),
    );
    for (;;) {
      signal.throwIfAborted();
      const [lock] = await session.query<{ ours: boolean }>(
        'select pg_try_advisory_lock(hashtext($1), hashtext($2)) as ours',
        [scope, name],
      );
      if (lock?.ours) break;
      await sleep(TRY_EVERY_MS, undefined, { signal });
    }
    signal.throwIfAborted();
  } catch (error) {
    await session.close();
    signal.throwIfAborted();
    throw error;
  } finally {
    signal.removeEventListener('abort', abandon);
  }
  let closing = false;
  return {
    execute: async <R>(query: RawBuilder<R>) => {
      const compiled = query.compile(db.kysely);
      return session.query<R>(compiled.sql, compiled.parameters);
    },
    listen: (channel, onNotify) => session.listen(channel, onNotify),
    lost: session.ended.then(() => (closing ? new Promise<void>(() => undefined) : undefined)),
    async close() {
      closing = true;
      await session.close();
    },
  };
}

/** PGlite: the holders of each name in this process — the leader and those waiting — and the queue's tail. */
const queues = new WeakMap<Database, Map<string, { holders: number; tail: Promise<void> }>>();

/** On PGlite, whether a holder in this process leads `[scope, name]` (or waits to); always false on PostgreSQL. */
export function ledInProcess(db: Database, [scope, name]: [string, string]): boolean {
  return (queues.get(db)?.get(`${scope}\u0000${name}`)?.holders ?? 0) > 0;
}

async function leadInProcess(db: Database, key: string, signal: AbortSignal): Promise<Leadership> {
  const byName = queues.get(db) ?? new Map<string, { holders: number; tail: Promise<void> }>();
  queues.set(db, byName);
  const queue = byName.get(key) ?? { holders: 0, tail: Promise.resolve() };
  byName.set(key, queue);
  const before = queue.tail;
  let released = false;
  let resolveMine!: () => void;
  const mine = new Promise<void>((resolve) => {
    resolveMine = resolve;
  });
  const release = () => {
    if (released) return;
    released = true;
    queue.holders--;
    resolveMine();
  };
  // The next holder waits for this one's release, or for the one before if this one gives up waiting.
  queue.holders++;
  queue.tail = before.then(() => mine);
  const aborted = new Promise<never>((_resolve, reject) => {
    const fail = () => reject(signal.reason);
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
  try {
    await Promise.race([before, aborted]);
  } catch (error) {
    release();
    throw error;
  }
  const unlisteners: (() => Promise<void>)[] = [];
  return {
    execute: async <R>(query: RawBuilder<R>) => (await query.execute(db.kysely)).rows,
    async listen(channel, onNotify) {
      unlisteners.push(await db.listen(channel, onNotify));
    },
    // PGlite's one connection is this process's: it is lost only with the process.
    lost: new Promise<void>(() => undefined),
    async close() {
      await Promise.allSettled(unlisteners.splice(0).map((unlisten) => unlisten()));
      release();
    },
  };
}
