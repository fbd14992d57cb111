import { ChassisError, defineError, tlsFailure } from '@chassis/core';
import { type DatabaseConnection, Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { featureUnsupported, isMysqlUrl, openMysql } from './mysql.ts';
import { type PostgresTls, postgresTls } from './postgres-tls.ts';
import {
  carryCommits,
  DEFAULT_PREPARED_STATEMENTS_PER_CONNECTION,
  prepareRepeatedStatements,
} from './prepared-statements.ts';
import { schemaPlugin } from './schema-plugin.ts';
import { type DatabaseUsage, UsageCounter } from './usage.ts';

/**
 * One database client over PostgreSQL (`pg`, production) and PGlite (embedded, the same SQL), with the
 * same API and the same transactions: a Kysely instance on both. `DATABASE_URL` picks:
 *
 * - `postgres://user@host:5432/db` — a pool of connections to a PostgreSQL server; TLS as libpq sets it:
 *   `?sslmode=verify-full&sslrootcert=/etc/pg/ca.crt` (see postgres-tls.ts);
 * - `pglite://memory` — an in-process PostgreSQL that forgets everything at exit (tests);
 * - `pglite://<dir>` — an in-process PostgreSQL that keeps its data in a folder (the all-in-one default).
 *
 * PGlite is one connection: its pool hands that connection to one user at a time, so transactions
 * are serialized. Inside a transaction, use the transaction's handle — asking the database itself for
 * a connection then would wait for the transaction to end, which is waiting for you.
 */

/** Tables unknown to the type system: for raw `sql` and for modules that declare their own. */
export type AnyTables = Record<string, never>;

export type DatabaseKind = 'postgres' | 'pglite' | 'mysql';

/**
 * A feature of the data kit that needs PostgreSQL (LISTEN/NOTIFY, the event store, sagas, projections)
 * asked for on MariaDB/MySQL: raised when the service starts, not at its first use.
 */
export const DatabaseFeatureUnsupported = defineError('DATABASE_FEATURE_UNSUPPORTED', {
  status: 500,
  retryable: false,
});

export interface DatabaseOptions {
  /** Connections in the pool (PostgreSQL). Default 10. */
  poolSize?: number;
  /**
   * Named prepared statements each connection keeps, so that a statement it runs again is not parsed
   * and planned again (see prepared-statements.ts, and pglite-prepared.ts for PGlite's one connection).
   * Default 256; 0 runs every statement unnamed — for a connection pooler that does not carry prepared
   * statements across, such as PgBouncer in transaction mode before 1.21.
   */
  preparedStatements?: number;
  /**
   * Plans each prepared statement once per connection, for any parameters (PostgreSQL's
   * `plan_cache_mode = force_generic_plan` on every connection of the pool; PostgreSQL only). By default
   * PostgreSQL plans a statement's first five executions on each connection for their parameters, and
   * then keeps a statement whose generic plan looks dearer on custom plans for ever: with connections
   * renewed after 10 s idle, SimpleBank's processes planned 5.3 statements an order (~4 ms of the server's
   * time an order at 16 clients) for plans that differ in nothing but the constants. Turn it on where every
   * statement's plan does not depend on its parameters — keys and ranges on an index, not a parameter
   * tested against a partial index's predicate (write such a value as a literal), nor a column whose
   * values are skewed. A URL that gives its own `options` keeps them.
   */
  genericPlans?: boolean;
}

export class Database {
  readonly kind: DatabaseKind;
  /** Kysely over the whole database; prefer `schema(name)` for a service's own tables. */
  readonly kysely: Kysely<AnyTables>;
  private readonly listener: (channel: string, onNotify: (payload: string) => void) => Promise<() => Promise<void>>;
  /** What the URL said, with any password hidden: for messages. */
  readonly description: string;
  /** The database's name on its server (the URL's path), for spans' `db.name`; undefined for PGlite. */
  readonly name: string | undefined;
  /** Statements and transactions sent through this handle since it opened. */
  readonly usage: DatabaseUsage;
  /** Ends the connections, idempotent: Kysely's `destroy` ends them only if a query ever ran. */
  private readonly disconnect: () => Promise<void>;
  private readonly sessionOpener: (() => Promise<DatabaseSession>) | undefined;

  /** Use `Database.open(url)`. */
  constructor(
    kind: DatabaseKind,
    kysely: Kysely<AnyTables>,
    listener: (channel: string, onNotify: (payload: string) => void) => Promise<() => Promise<void>>,
    description: string,
    usage: DatabaseUsage,
    /** None for a handle over another's connections (a plugin added): their owner ends them. */
    disconnect: () => Promise<void> = async () => undefined,
    openSession?: () => Promise<DatabaseSession>,
  ) {
    this.kind = kind;
    this.disconnect = disconnect;
    this.sessionOpener = openSession;
    this.kysely = kysely;
    this.listener = listener;
    this.description = description;
    this.name = kind === 'postgres' ? databaseNameOf(description) : undefined;
    this.usage = usage;
  }

  static async open(url: string, options: DatabaseOptions = {}): Promise<Database> {
    // Loaded only where it is opened: PGlite's JavaScript is ~8 MB of a process's RSS, for nothing in a
    // process of the distributed topology (PostgreSQL).
    if (url.startsWith('pglite://')) return (await import('./pglite-database.ts')).openPglite(url, options);
    if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return openPostgres(url, options);
    if (isMysqlUrl(url)) return openMysql(url, options);
    throw new ChassisError(
      'CONFIG',
      `DATABASE_URL "${hidePassword(url)}" is not one this client opens: use postgres://user@host:5432/db, pglite://memory, pglite://<folder> or mysql://user@host:3306/ (MariaDB/MySQL)`,
    );
  }

  /** Kysely bound to a schema: `db.schema<OrdersTables>('orders').selectFrom('orders')…`. */
  schema<Tables>(name: string): Kysely<Tables> {
    return (this.kysely as unknown as Kysely<Tables>).withPlugin(schemaPlugin(name));
  }

  /**
   * Fails with `DATABASE_FEATURE_UNSUPPORTED` naming `feature` unless this database has what it needs
   * (PostgreSQL or PGlite): called where a service sets the feature up, so that it fails at start.
   */
  requireFeature(feature: string): void {
    if (this.kind === 'mysql') throw featureUnsupported(this.description, feature);
  }

  /** Runs `work` in one transaction: all of it commits, or none of it does. */
  transaction<T>(work: (trx: Kysely<AnyTables>) => Promise<T>): Promise<T> {
    return this.kysely.transaction().execute(work);
  }

  /** LISTENs on a channel; resolves to a function that stops listening. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>> {
    return this.listener(channel, onNotify);
  }

  /**
   * A connection of its own, outside the pool, for what lives as long as a session does (a session-level
   * advisory lock, LISTEN): PostgreSQL only, undefined on PGlite, whose one connection is everyone's.
   */
  openSession(): Promise<DatabaseSession> | undefined {
    return this.sessionOpener?.();
  }

  /** Ends every connection, so the process can exit at once. */
  async close(): Promise<void> {
    await this.kysely.destroy();
    await this.disconnect();
  }
}

/** A connection of its own (`Database.openSession`). */
export interface DatabaseSession {
  /** Runs one statement; rows as the pool would give them. */
  query<R>(text: string, parameters?: readonly unknown[]): Promise<R[]>;
  /** LISTENs on this session; notifications come while it is not running a statement. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<void>;
  /** Resolves when the connection ends, whoever ended it. */
  readonly ended: Promise<void>;
  close(): Promise<void>;
}

function databaseNameOf(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).pathname.slice(1)) || undefined;
  } catch {
    return undefined;
  }
}

function hidePassword(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}

// PostgreSQL --------------------------------------------------------------------------------------

const INT8 = 20;

/**
 * `bigint` columns (event positions, counts) as numbers, as PGlite returns them, so both databases
 * answer alike. Set on our pool only: changing pg's global parsers would change the application's.
 */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8 && format !== 'binary') return (value: string) => Number(value);
    // biome-ignore lint/suspicious/noExplicitAny: pg's own overloads do not accept a union of formats.
    return pg.types.getTypeParser(oid, format as any);
  },
};

/** What every `pg` client of a URL is made with: the URL without its TLS parameters, and the TLS options. */
function clientConfig(tls: PostgresTls): { connectionString: string; ssl: PostgresTls['ssl']; types: typeof types } {
  return { connectionString: tls.connectionString, ssl: tls.ssl, types };
}

async function openPostgres(url: string, options: DatabaseOptions): Promise<Database> {
  const tls = postgresTls(url);
  const pool = new pg.Pool({
    ...clientConfig(tls),
    max: options.poolSize ?? 10,
    // Sent in the connection's startup message: no statement of its own.
    ...(options.genericPlans ? { options: '-c plan_cache_mode=force_generic_plan' } : {}),
  });
  // A connection that dies (a server restart, a terminated backend) must not crash the process. The
  // pool reports an idle one's death; a checked-out client reports its own, to its own listeners — with
  // none, Node throws. The query in flight fails on its own, and the pool replaces the client.
  pool.on('error', () => undefined);
  const usage = new UsageCounter();
  const preparedStatements = options.preparedStatements ?? DEFAULT_PREPARED_STATEMENTS_PER_CONNECTION;
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
    // Counted outside the naming: the counts are of what Kysely asked for, not of a repair's DEALLOCATE.
    prepareRepeatedStatements(client, preparedStatements);
    countQueries(client, usage.connection());
  });
  try {
    const client = await pool.connect();
    client.release();
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw connectError(url, error, tls);
  }
  // A unit of work's last statement carries its COMMIT (`committing`): the connection passes the mark on.
  const onCreateConnection = async (connection: DatabaseConnection) => carryCommits(connection);
  const kysely = new Kysely<AnyTables>({ dialect: new PostgresDialect({ pool, onCreateConnection }) });
  return new Database(
    'postgres',
    kysely,
    (channel, onNotify) => listenOn(tls, channel, onNotify),
    hidePassword(url),
    usage,
    async () => {
      if (!pool.ending) await pool.end();
    },
    () => openSession(tls, usage, preparedStatements),
  );
}

async function openSession(
  tls: PostgresTls,
  usage: UsageCounter,
  preparedStatements: number,
): Promise<DatabaseSession> {
  const client = new pg.Client(clientConfig(tls));
  // A lost connection ends the session (`ended`); whoever uses it sees its statements fail.
  client.on('error', () => undefined);
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw unavailableIfDisconnected(error);
  }
  prepareRepeatedStatements(client, preparedStatements);
  countQueries(client as unknown as pg.PoolClient, usage.connection());
  const listeners = new Map<string, (payload: string) => void>();
  client.on('notification', (message) => listeners.get(message.channel)?.(message.payload ?? ''));
  return {
    async query<R>(text: string, parameters: readonly unknown[] = []) {
      try {
        return (await client.query(text, [...parameters])).rows as R[];
      } catch (error) {
        throw unavailableIfDisconnected(error);
      }
    },
    async listen(channel, onNotify) {
      listeners.set(channel, onNotify);
      await client.query(`LISTEN ${quoteIdentifier(channel)}`);
    },
    ended,
    async close() {
      await client.end().catch(() => undefined);
    },
  };
}

/** Counts what a pg client is sent (Kysely sends SQL text; a cursor carries it as `text`). */
function countQueries(client: pg.PoolClient, count: (text: string) => void): void {
  const query = client.query as (...args: unknown[]) => unknown;
  client.query = ((config: unknown, ...rest: unknown[]) => {
    const text = typeof config === 'string' ? config : (config as { text?: unknown } | null)?.text;
    if (typeof text === 'string') count(text);
    return query.call(client, config, ...rest);
  }) as typeof client.query;
}

/**
 * Why a first connection failed. A server that is down or restarting is `UNAVAILABLE` (retryable: it
 * may come back); a database that does not exist or a login the server refuses is `CONFIG`, with what
 * to change, since retrying would fail the same way forever.
 */
function connectError(url: string, error: unknown, tls: PostgresTls): ChassisError {
  const where = hidePassword(url);
  const { code, message } = error as { code?: unknown; message: string };
  const parsed = new URL(url);
  const tlsError = tlsFailure(error, {
    server: 'PostgreSQL',
    address: parsed.host,
    files: tls.files,
    names: tls.names,
    enableTlsHint: `Turn ssl on in the server (postgresql.conf), or set sslmode=disable (${tls.modeSetting}) where the network needs no TLS`,
  });
  if (tlsError) return tlsError;
  if (code === '3D000') {
    const name = new URL(url).pathname.slice(1) || '(none)';
    return new ChassisError(
      'CONFIG',
      `The database "${decodeURIComponent(name)}" does not exist at ${where}: create it (createdb, or CREATE DATABASE) or point the URL at one that does`,
      { cause: error },
    );
  }
  if (code === '28000' || code === '28P01') {
    return new ChassisError(
      'CONFIG',
      `PostgreSQL at ${where} refused the login: ${message}. Check the user and password in the URL`,
      { cause: error },
    );
  }
  return new ChassisError('UNAVAILABLE', `Cannot connect to PostgreSQL at ${where}: ${message}`, { cause: error });
}

/**
 * Errors that say the connection to the database is gone or cannot be made (a server restart, a
 * terminated backend, a refused connection, a server or role out of connections): SQLSTATE classes 08
 * and 57P, 53300, and node's socket errors.
 */
const CONNECTION_LOST_CODES = new Set([
  '53300',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
]);

/**
 * A lost or refused database connection as `UNAVAILABLE` (503, retryable): the database will be back,
 * so an action's caller may try again and an event waits in the broker for it, instead of failing as a
 * bug would (500, or a dead letter after `maxDeliveries`). Any other error is returned as it is.
 */
export function unavailableIfDisconnected(error: unknown): unknown {
  if (error instanceof ChassisError || !(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  const lost =
    (typeof code === 'string' && CONNECTION_LOST_CODES.has(code)) ||
    /Connection terminated|not queryable|timeout exceeded when trying to connect/i.test(error.message);
  return lost
    ? new ChassisError('UNAVAILABLE', `The database cannot be reached: ${error.message}`, { cause: error })
    : error;
}

/** The longest wait between attempts to LISTEN again after the connection was lost. */
const MAX_RELISTEN_DELAY_MS = 5000;

/**
 * LISTENs on a connection of its own, kept for as long as we listen. A connection lost (a server
 * restart, a terminated backend) is made again, with growing pauses, and LISTENs again; once back it
 * calls `onNotify('')`, since whatever was announced meanwhile went unheard. The first connection's
 * failure is the caller's to handle.
 */
async function listenOn(
  tls: PostgresTls,
  channel: string,
  onNotify: (payload: string) => void,
): Promise<() => Promise<void>> {
  let current: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  let delayMs = 100;

  const connect = async (): Promise<void> => {
    const client = new pg.Client(clientConfig(tls));
    let listening = false;
    client.on('error', () => undefined);
    client.on('end', () => {
      if (listening && !stopped) listenAgainSoon();
    });
    client.on('notification', (message) => {
      if (message.channel === channel) onNotify(message.payload ?? '');
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdentifier(channel)}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    listening = true;
    current = client;
  };

  const listenAgainSoon = () => {
    current = undefined;
    retry = setTimeout(() => {
      connect().then(
        () => {
          delayMs = 100;
          if (!stopped) onNotify('');
        },
        () => {
          delayMs = Math.min(delayMs * 2, MAX_RELISTEN_DELAY_MS);
          if (!stopped) listenAgainSoon();
        },
      );
    }, delayMs);
    retry.unref();
  };

  await connect();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    await current?.end().catch(() => undefined);
  };
}

export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Re-exported so modules write SQL with the same tag: sql`select …`.execute(db.kysely). */
export { sql };
