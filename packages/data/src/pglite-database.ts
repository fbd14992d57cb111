import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ChassisError } from '@chassis/core';
import { PGlite } from '@electric-sql/pglite';
import {
  type DatabaseConnection,
  Kysely,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresQueryResult,
} from 'kysely';
import { type AnyTables, Database, type DatabaseOptions } from './database.ts';
import {
  isTransactionControl,
  type PgliteConnection,
  PglitePreparedStatements,
  rolledBack,
} from './pglite-prepared.ts';
import { carryCommits, DEFAULT_PREPARED_STATEMENTS_PER_CONNECTION, takeCommitMark } from './prepared-statements.ts';
import { UsageCounter } from './usage.ts';

/**
 * `pglite://` databases: an in-process PostgreSQL (PGlite) behind the same `Database` as PostgreSQL's.
 * In a file of its own, imported by `openDatabase` when a PGlite is opened, so that a process on
 * PostgreSQL never loads PGlite.
 */

/**
 * A pristine in-memory PGlite, never handed out: each `pglite://memory` starts from a copy of its files.
 * Starting PGlite takes seconds (its WebAssembly PostgreSQL is compiled and boots: 6 s measured on a
 * busy 2-core machine); from a copy, about one (1.2 s there) — which adds up in a test suite opening a
 * fresh database per test.
 */
let memoryTemplate: Promise<PGlite> | undefined;

/**
 * What PGlite starts PostgreSQL with, beside its own defaults. PGlite keeps PostgreSQL's
 * `shared_buffers` of 128 MB, and its shared memory is zero-filled WebAssembly memory, so those 128 MB
 * are resident from the start: a PGlite on an existing folder was 268–293 MB RSS after create, of which
 * 151 MB its WebAssembly memory. At 16 MB: 154–194 MB, 29 MB of it WebAssembly (RSS after 12,000 inserts
 * + selects + updates: 431–456 → 288–304 MB). The pages PostgreSQL does not keep are in the OS page cache
 * (a folder) or in PGlite's in-memory file system (memory), one copy call away, not on disk: the same
 * loop took as long (2nd pass, 3 runs each on a busy 2-core machine: 2.3–2.9 s at 128 MB, 2.1–3.6 s at
 * 16 MB, 2.4–3.5 s at 8 MB). At 8 MB instead of 16, the embedded SimpleBank after 10 s of 8 clients
 * (three runs each alternating, loaded 2-core machine): its WebAssembly memory's resident part 32 → 24 MB,
 * statements and transactions per order the same, CPU per order within the machine's noise (issue 12's
 * memory goal: ≤ 250 MB after a load). 4 MB took it to 16 MB (one run), but a bank's hot pages (its
 * outboxes, open orders, their indexes) would then be read again from the file system more often, at a
 * CPU cost a 10 s bench does not show: not taken. `wal_buffers` follows (1/32 of it); `work_mem`,
 * `temp_buffers` and `maintenance_work_mem` are taken only by a query that needs them.
 *
 * `max_connections`: PGlite is one backend in single-user mode, yet PostgreSQL sizes its shared memory
 * (the lock and predicate-lock tables, per-backend slots) for the 100 it may be given, and it is resident
 * as the buffers are: `pg_shmem_allocations` 16 → 12 MB at 4 (the least above the 3 reserved for
 * superusers), the embedded bank's WebAssembly memory 24 → 20 MB resident. Its lock table still holds
 * 64 locks × 18 backend slots (autovacuum's and WAL senders' count too): one transaction creating 1,000
 * tables with their keys passed (3,000 ran out of shared memory), ample for a migration.
 */
const PGLITE_SETTINGS = ['shared_buffers=8MB', 'max_connections=4'];

const pgliteStartParams = () => [
  ...PGlite.defaultStartParams,
  ...PGLITE_SETTINGS.flatMap((setting) => ['-c', setting]),
];

/**
 * Creates a database (initdb) in `dataDir`, in a child process. Done in this process, initdb left
 * ~450 MB behind until a full GC came (PGlite runs initdb in a second PGlite, with a copy of its whole
 * WebAssembly memory): a process opening a fresh folder was 689 MB RSS after open (1,181 MB peak),
 * against 218–246 MB opening an existing one. On a worker thread, 410–448 MB (the thread's malloc arenas
 * stay); in a child process, 214 MB, for ~1 s more on the first start.
 */
function initdbElsewhere(dataDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = fork(new URL('./pglite-initdb.ts', import.meta.url).pathname, [dataDir], {
      execArgv: [],
      env: { ...process.env, CHASSIS_PGLITE_START_PARAMS: JSON.stringify(pgliteStartParams()) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`initdb's process exited with ${signal ?? `code ${code}`}`));
    });
  });
}

export async function openPglite(url: string, options: DatabaseOptions): Promise<Database> {
  const location = url.slice('pglite://'.length);
  const dataDir = location === 'memory' || location === '' ? undefined : resolve(location);
  let lite: PGlite;
  try {
    if (dataDir) {
      // `pglite://.data/simplebank` on a fresh clone: the folder's parent does not exist yet.
      await mkdir(dirname(dataDir), { recursive: true });
      if (!existsSync(join(dataDir, 'PG_VERSION'))) await initdbElsewhere(dataDir);
      lite = await PGlite.create({ dataDir, startParams: pgliteStartParams() });
    } else {
      memoryTemplate ??= PGlite.create({ startParams: pgliteStartParams() });
      // What `clone()` does, with our settings: it would start the copy with PGlite's own.
      const loadDataDir = await (await memoryTemplate).dumpDataDir('none');
      lite = await PGlite.create({ loadDataDir, startParams: pgliteStartParams() });
    }
  } catch (error) {
    throw new ChassisError('UNAVAILABLE', `Cannot open PGlite at ${dataDir ?? 'memory'}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const usage = new UsageCounter();
  const pool = new OneConnectionPool(
    lite,
    new PglitePreparedStatements(lite, options.preparedStatements ?? DEFAULT_PREPARED_STATEMENTS_PER_CONNECTION),
    usage.connection(),
  );
  // A unit of work's last statement carries its COMMIT (`committing`): one call into PGlite fewer.
  const onCreateConnection = async (connection: DatabaseConnection) => carryCommits(connection);
  const kysely = new Kysely<AnyTables>({ dialect: new PostgresDialect({ pool, onCreateConnection }) });
  return new Database(
    'pglite',
    kysely,
    async (channel, onNotify) => {
      const unlisten = await lite.listen(channel, onNotify);
      return async () => {
        await unlisten();
      };
    },
    dataDir ? `pglite://${dataDir}` : 'pglite://memory',
    usage,
    () => pool.end(),
  );
}

/**
 * PGlite seen as a pg pool of one connection, so Kysely's own PostgreSQL dialect drives it: the
 * connection goes to one user at a time, in the order they asked.
 *
 * Written by hand: the PGlite dialect packages on npm lag PGlite's releases (one pins PGlite ≤ 0.4) or
 * bring a code generator and a CLI along; this is the thirty lines they would have given us.
 *
 * Statements with parameters go through `statements`, which prepares the repeated ones (PGlite's own
 * `query` sends every statement unnamed, parsed and planned anew: see pglite-prepared.ts).
 */
class OneConnectionPool implements PostgresPool {
  /** Kysely reads pool options only to cancel a query from another connection, which PGlite has not. */
  readonly options = {};
  private tail: Promise<void> = Promise.resolve();

  private readonly lite: PgliteConnection & Pick<PGlite, 'exec' | 'close'>;
  private readonly statements: PglitePreparedStatements;
  /** Counts what the one connection is sent. */
  private readonly count: (text: string) => void;

  constructor(
    lite: PgliteConnection & Pick<PGlite, 'exec' | 'close'>,
    statements: PglitePreparedStatements,
    count: (text: string) => void,
  ) {
    this.lite = lite;
    this.statements = statements;
    this.count = count;
  }

  /**
   * The one client, handed to each user in turn: Kysely makes a connection object (and runs
   * `onCreateConnection`) for every client it has not seen, so a client made per `connect` cost every
   * statement run alone and every transaction one of each.
   */
  private readonly client = this.makeClient();
  /** Ends the current user's turn; undefined between turns. */
  private releaseTurn: (() => void) | undefined;

  async connect(): Promise<PostgresPoolClient> {
    let release!: () => void;
    const previous = this.tail;
    this.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    this.releaseTurn = release;
    return this.client;
  }

  private makeClient(): PostgresPoolClient {
    const pool = this;
    const client = {
      async query<R>(text: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> {
        // Read before anything awaits: it is this call's (see `carryCommits`).
        const commits = takeCommitMark();
        pool.count(text);
        // Several statements (a migration file) go through exec, which takes no parameters.
        if (parameters.length === 0 && !isTransactionControl(text)) {
          await pool.statements.beforeExec();
          const results = await pool.lite.exec(text);
          const last = results.at(-1);
          return { command: commandOf(text), rowCount: last?.affectedRows ?? 0, rows: (last?.rows ?? []) as R[] };
        }
        const result = await pool.statements.query<R>(text, [...parameters], commits);
        const command = rolledBack(result) ? 'ROLLBACK' : commandOf(text);
        return { command, rowCount: result.affectedRows ?? 0, rows: result.rows };
      },
      // Kysely releases each turn once; a second call in the same turn does nothing.
      release() {
        const release = pool.releaseTurn;
        pool.releaseTurn = undefined;
        release?.();
      },
    };
    return client as unknown as PostgresPoolClient;
  }

  async end(): Promise<void> {
    await this.tail;
    if (!this.lite.closed) await this.lite.close();
  }
}

/** What Kysely reads to report affected rows; a statement starting with WITH reports none. */
function commandOf(text: string): PostgresQueryResult<unknown>['command'] | 'ROLLBACK' {
  const word = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase();
  return word === 'INSERT' || word === 'UPDATE' || word === 'DELETE' || word === 'MERGE' ? word : 'SELECT';
}
