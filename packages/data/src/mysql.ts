import { createHash } from 'node:crypto';
import { ChassisError } from '@chassis/core';
import {
  CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  Kysely,
  MysqlAdapter,
  MysqlDialect,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import type { ConnectionOptions } from 'mysql2';
import { type AnyTables, Database, type DatabaseOptions } from './database.ts';
import { type DatabaseUsage, UsageCounter } from './usage.ts';

/**
 * MariaDB and MySQL (`mysql://` or `mariadb://`) behind the same `Database`: Kysely's MySQL dialect on a
 * `mysql2` pool. In MySQL a schema is a database, so a service's schema is a database named after the
 * service (`db.schema('flights')` is the `flights` database), created by its migrations when missing.
 * The URL's own database, if it names one, is only the pool's default: it must exist.
 *
 * What differs from PostgreSQL, and why:
 * - DDL commits at once (MySQL has no transactional DDL): a migration file that fails keeps the schema
 *   changes made before its failing statement; it is not recorded, so it runs again at the next start.
 * - Locks that outlive a transaction are `GET_LOCK` (session-level named locks), taken on a connection
 *   of their own, released by the server when that connection ends.
 * - No LISTEN/NOTIFY: the outbox relay polls, and a node wakes its own relay when a handler that emitted
 *   commits. The event store, sagas and projections need PostgreSQL: asking for them on MariaDB fails at
 *   start with `DATABASE_FEATURE_UNSUPPORTED` (see `Database.requireFeature`).
 * - Errors are mapped where every query passes (`MappedMysqlDriver`): a lost connection is `UNAVAILABLE`
 *   (retryable), a duplicate key `CONFLICT`, an unknown database or a refused login `CONFIG`.
 */

/** What the data kit needs of a MySQL database beside its pool: connections of its own, for locks and files. */
interface MysqlInternals {
  config: ConnectionOptions;
  where: string;
}

const internals = new WeakMap<Database, MysqlInternals>();

/**
 * mysql2, loaded by the first MySQL database opened: a process on PostgreSQL or PGlite (every reference
 * system's default) is spared its 88 modules (3.3 MB of heap, ~20 MB RSS measured on import).
 */
async function loadMysql2() {
  return (await import('mysql2')).default;
}

export function isMysqlUrl(url: string): boolean {
  return url.startsWith('mysql://') || url.startsWith('mariadb://');
}

function connectionOptions(url: string): ConnectionOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ChassisError(
      'CONFIG',
      'DATABASE_URL is not a valid URL: write mysql://user:password@host:3306/ (the database is optional)',
    );
  }
  const database = decodeURIComponent(parsed.pathname.slice(1));
  return {
    host: parsed.hostname || '127.0.0.1',
    port: Number(parsed.port || 3306),
    user: decodeURIComponent(parsed.username || 'root'),
    password: decodeURIComponent(parsed.password),
    ...(database ? { database } : {}),
    // DATETIME values are UTC both ways: the pool's sessions run at +00:00 (see `onCreateConnection`).
    timezone: 'Z',
    connectTimeout: 10_000,
    enableKeepAlive: true,
    // BIGINT as a number when it fits (counts, ids), as PostgreSQL's bigint reads here.
    supportBigNumbers: true,
    bigNumberStrings: false,
  };
}

export async function openMysql(url: string, options: DatabaseOptions): Promise<Database> {
  const config = connectionOptions(url);
  const where = hideMysqlPassword(url);
  const mysql = await loadMysql2();
  const pool = mysql.createPool({
    ...config,
    connectionLimit: options.poolSize ?? 10,
    maxIdle: options.poolSize ?? 10,
  });
  // A connection that dies while idle must not crash the process; the pool drops it.
  pool.on('connection', (connection) => connection.on('error', () => undefined));
  let ended = false;
  const end = () =>
    new Promise<void>((resolve) => {
      if (ended) return resolve();
      ended = true;
      pool.end(() => resolve());
    });
  try {
    await new Promise<void>((resolve, reject) =>
      pool.getConnection((error, connection) => {
        if (error) return reject(error);
        connection.release();
        resolve();
      }),
    );
  } catch (error) {
    await end();
    throw mysqlConnectError(where, config, error);
  }
  const usage = new UsageCounter();
  const dialect = new MysqlDialect({
    pool,
    async onCreateConnection(connection) {
      await connection.executeQuery(CompiledQuery.raw("set time_zone = '+00:00'"));
    },
  });
  const mapped = new MappedMysqlDialect(dialect, where, usage, end);
  const kysely = new Kysely<AnyTables>({ dialect: mapped });
  const db = new Database(
    'mysql',
    kysely,
    () => Promise.reject(featureUnsupported(where, 'LISTEN/NOTIFY (Database.listen)')),
    where,
    usage as DatabaseUsage,
    end,
  );
  internals.set(db, { config, where });
  return db;
}

function hideMysqlPassword(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}

export function featureUnsupported(where: string, feature: string): ChassisError {
  return new ChassisError(
    'DATABASE_FEATURE_UNSUPPORTED',
    `${feature} needs PostgreSQL (postgres:// or pglite://), and ${where} is MariaDB/MySQL, on which the data kit offers migrations, units of work, the outbox, the inbox and cluster schedules: run this service on PostgreSQL, or do without ${feature}`,
    { status: 500, retryable: false, data: { feature, database: where } },
  );
}

/** Whether a Kysely (a transaction's included) talks to MariaDB/MySQL. */
export function isMysql(kysely: Kysely<AnyTables>): boolean {
  return kysely.getExecutor().adapter instanceof MysqlAdapter;
}

// Errors --------------------------------------------------------------------------------------------

/** mysql2's codes for a connection that is gone or cannot be made, and the server's for going away. */
const CONNECTION_LOST = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ER_SERVER_SHUTDOWN',
  'ER_CON_COUNT_ERROR',
  'ER_CONNECTION_KILLED',
  'ER_QUERY_INTERRUPTED',
]);

/** Errors after which running the transaction again succeeds: InnoDB rolled it back to break a tie. */
const TRY_AGAIN = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);

interface MysqlError extends Error {
  code?: string;
  errno?: number;
  sqlMessage?: string;
  fatal?: boolean;
}

/**
 * A MySQL error as the chassis reports it: a lost connection (and a deadlock, which InnoDB ends by rolling
 * one transaction back) `UNAVAILABLE`, a duplicate key `CONFLICT`, an unknown database or a refused login
 * `CONFIG`. Anything else — a missing table, bad SQL — is returned as it is, for the caller to look at.
 */
export function mapMysqlError(error: unknown, where: string): unknown {
  if (error instanceof ChassisError || !(error instanceof Error)) return error;
  const { code = '', message } = error as MysqlError;
  if (CONNECTION_LOST.has(code) || /closed state|Pool is closed/i.test(message)) {
    return new ChassisError('UNAVAILABLE', `MariaDB/MySQL at ${where} cannot be reached: ${message}`, {
      cause: error,
      data: { mysqlCode: code },
    });
  }
  if (TRY_AGAIN.has(code)) {
    return new ChassisError(
      'UNAVAILABLE',
      `MariaDB/MySQL rolled the transaction back (${code}); try again: ${message}`,
      {
        cause: error,
        data: { mysqlCode: code },
      },
    );
  }
  if (code === 'ER_DUP_ENTRY') {
    return new ChassisError('CONFLICT', `Duplicate key: ${message}`, { cause: error, data: { mysqlCode: code } });
  }
  if (code === 'ER_BAD_DB_ERROR') {
    return new ChassisError(
      'CONFIG',
      `${message} at ${where}: create it (CREATE DATABASE), or leave the database out of the URL (mysql://user@host:3306/) — each service's migrations create the database named after it`,
      { cause: error, data: { mysqlCode: code } },
    );
  }
  // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR, ER_DBACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR…
  if (/^ER_\w*ACCESS_DENIED/.test(code)) {
    return new ChassisError(
      'CONFIG',
      `MariaDB/MySQL at ${where} refused: ${message}. Check the user and password in the URL, and that the user is granted what the service needs (CREATE, ALTER, SELECT, INSERT, UPDATE, DELETE on its database)`,
      { cause: error, data: { mysqlCode: code } },
    );
  }
  return error;
}

function mysqlConnectError(where: string, config: ConnectionOptions, error: unknown): unknown {
  const mapped = mapMysqlError(error, where);
  if (mapped instanceof ChassisError) return mapped;
  const message = error instanceof Error ? error.message : String(error);
  return new ChassisError(
    'UNAVAILABLE',
    `Cannot connect to MariaDB/MySQL at ${config.host}:${config.port}: ${message}`,
    {
      cause: error,
    },
  );
}

/** MySQL's codes for a table or database that is not there (an install step was skipped). */
export function isMysqlMissingTable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ER_NO_SUCH_TABLE' || code === 'ER_BAD_DB_ERROR';
}

// The pool, errors mapped and statements counted ---------------------------------------------------

/** Kysely's MySQL dialect, its driver wrapped by `MappedMysqlDriver`. */
class MappedMysqlDialect implements Dialect {
  private readonly inner: MysqlDialect;
  private readonly where: string;
  private readonly usage: UsageCounter;
  private readonly end: () => Promise<void>;

  constructor(inner: MysqlDialect, where: string, usage: UsageCounter, end: () => Promise<void>) {
    this.inner = inner;
    this.where = where;
    this.usage = usage;
    this.end = end;
  }

  createDriver(): Driver {
    return new MappedMysqlDriver(this.inner.createDriver(), this.where, this.usage, this.end);
  }

  createQueryCompiler(): QueryCompiler {
    return this.inner.createQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return this.inner.createAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return this.inner.createIntrospector(db);
  }
}

/**
 * Kysely's MySQL driver with each statement counted (`db.usage`) and each error mapped (`mapMysqlError`),
 * so that a lost connection is retryable wherever the query was sent from.
 */
class MappedMysqlDriver implements Driver {
  private readonly wrappers = new WeakMap<DatabaseConnection, DatabaseConnection>();
  private readonly raw = new WeakMap<DatabaseConnection, DatabaseConnection>();
  private readonly inner: Driver;
  private readonly where: string;
  private readonly usage: UsageCounter;
  private readonly end: () => Promise<void>;

  constructor(inner: Driver, where: string, usage: UsageCounter, end: () => Promise<void>) {
    this.inner = inner;
    this.where = where;
    this.usage = usage;
    this.end = end;
  }

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    let connection: DatabaseConnection;
    try {
      connection = await this.inner.acquireConnection();
    } catch (error) {
      throw mapMysqlError(error, this.where);
    }
    let wrapper = this.wrappers.get(connection);
    if (!wrapper) {
      const count = this.usage.connection();
      const where = this.where;
      wrapper = {
        async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
          count(query.sql);
          try {
            return await connection.executeQuery<R>(query);
          } catch (error) {
            throw mapMysqlError(error, where);
          }
        },
        streamQuery: <R>(query: CompiledQuery, chunkSize: number) => {
          count(query.sql);
          return connection.streamQuery<R>(query, chunkSize);
        },
      };
      this.wrappers.set(connection, wrapper);
      this.raw.set(wrapper, connection);
    }
    return wrapper;
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(connection, settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(connection);
  }

  savepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['savepoint']>>[2]) {
    return this.inner.savepoint!(connection, name, compile);
  }

  rollbackToSavepoint(
    connection: DatabaseConnection,
    name: string,
    compile: Parameters<NonNullable<Driver['savepoint']>>[2],
  ) {
    return this.inner.rollbackToSavepoint!(connection, name, compile);
  }

  releaseSavepoint(
    connection: DatabaseConnection,
    name: string,
    compile: Parameters<NonNullable<Driver['savepoint']>>[2],
  ) {
    return this.inner.releaseSavepoint!(connection, name, compile);
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(this.raw.get(connection) ?? connection);
  }

  /** Ends the pool (once: `Database.close` ends it too when Kysely never ran a query). */
  destroy(): Promise<void> {
    return this.end();
  }
}

// Connections of their own: migrations, installs, locks --------------------------------------------

/** One connection outside the pool, its statements run one at a time; several per `query` allowed. */
export interface MysqlSession {
  query<R = Record<string, unknown>>(text: string, parameters?: readonly unknown[]): Promise<R[]>;
}

function internalsOf(db: Database): MysqlInternals {
  const found = internals.get(db);
  if (!found) throw new Error(`${db.description} is not a MariaDB/MySQL database`);
  return found;
}

/**
 * Runs `work` on a connection of its own (multiple statements allowed: a migration file), holding the
 * named lock `GET_LOCK(name)` the whole time; the server releases it when the connection ends, whatever
 * happens to this process. Cluster-wide: one holder of a name at a time.
 */
export async function withMysqlLock<T>(
  db: Database,
  name: string,
  work: (session: MysqlSession) => Promise<T>,
): Promise<T> {
  const { config, where } = internalsOf(db);
  const mysql = await loadMysql2();
  const connection = mysql.createConnection({ ...config, multipleStatements: true });
  connection.on('error', () => undefined);
  const query = <R>(text: string, parameters: readonly unknown[] = []) =>
    new Promise<R[]>((resolve, reject) =>
      connection.query(text, [...parameters], (error, rows) => {
        if (error) reject(mapMysqlError(error, where));
        else resolve(rows as R[]);
      }),
    );
  try {
    await new Promise<void>((resolve, reject) =>
      connection.connect((error) => (error ? reject(mysqlConnectError(where, config, error)) : resolve())),
    );
    await query("set time_zone = '+00:00'");
    // Asked again every 10 s: a holder that is slow (a long migration) is waited for, not failed.
    for (;;) {
      const [row] = await query<{ ours: number | null }>('select get_lock(?, 10) as ours', [lockName(name)]);
      if (row?.ours === 1) break;
    }
    return await work({ query });
  } finally {
    // The lock goes with the connection.
    await new Promise<void>((resolve) => connection.end(() => resolve())).catch(() => undefined);
    connection.destroy();
  }
}

/** A lock name MySQL takes (at most 64 characters): long names are shortened and made unique by a hash. */
export function lockName(name: string): string {
  if (name.length <= 64) return name;
  return `${name.slice(0, 47)}:${createHash('sha256').update(name).digest('hex').slice(0, 16)}`;
}

/** `identifier` quoted for MySQL. */
export function quoteMysqlIdentifier(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}

/**
 * Creates the service's database if it is missing and runs `statements` in it, under the service's
 * migration lock: two nodes starting at once, or one migrating while another installs, never race.
 * The database refused (no CREATE grant) is a `CONFIG` error saying what to grant or create.
 */
export async function installInServiceDatabase(db: Database, service: string, statements: string[]): Promise<void> {
  await withMysqlLock(db, `chassis:migrate:${service}`, async (session) => {
    await useServiceDatabase(db, session, service);
    for (const statement of statements) await session.query(statement);
  });
}

/** `create database if not exists` the service's database, then `use` it on this session. */
export async function useServiceDatabase(db: Database, session: MysqlSession, service: string): Promise<void> {
  const name = quoteMysqlIdentifier(service);
  try {
    await session.query(`create database if not exists ${name}`);
  } catch (error) {
    if (error instanceof ChassisError && error.code === 'CONFIG') {
      throw new ChassisError(
        'CONFIG',
        `MariaDB/MySQL at ${internalsOf(db).where} refused to create the database "${service}" of service "${service}": ${error.message}. Grant the user CREATE (GRANT ALL ON \`${service}\`.* TO …), or create the database yourself`,
        { cause: error, data: { service } },
      );
    }
    throw error;
  }
  await session.query(`use ${name}`);
}
