import { hash } from 'node:crypto';
import { ChassisError } from '@chassis/core';
import type { CompiledQuery, DatabaseConnection, QueryResult } from 'kysely';
import pg from 'pg';
import { afterCarriedCommit, type CarriedOutcome, nextCommand } from './carried-commit.ts';

/**
 * Named prepared statements on PostgreSQL connections: PostgreSQL parses and plans each distinct
 * statement once per connection, then only binds and executes it.
 *
 * Kysely's driver calls `client.query(text, values)`, which pg sends as the unnamed statement: parsed,
 * analysed and planned anew every time. `client.query({ name, text, values })` sends Parse once per
 * connection (pg remembers what it parsed, in `connection.parsedStatements`) and from then on only
 * Bind and Execute. So the client a connection gets turns the first form into the second, for the
 * statements where that pays and cannot break:
 *
 * - only statements with parameters: a text without any may hold several statements (a migration
 *   file), which a prepared statement cannot, and migrations run unqualified names under a `set local
 *   search_path`, whose change would make a prepared statement re-analyse to another result;
 * - only queries and DML (`select`, `insert`, `update`, `delete`, `with`, …), by their first keyword:
 *   DDL, transaction control, `set`, LISTEN and the like gain nothing;
 * - at most `limit` names per connection: texts that vary (an `in (…)` list of each length) must not
 *   grow a backend's memory without end. Past the limit, new texts run unnamed; the pool renews idle
 *   connections (pg's 10 s idle timeout), which starts them afresh.
 *
 * A prepared statement outlives a change of its table: `select *` after `alter table … add column`
 * fails with `cached plan must not change result type` (SQLSTATE 0A000) until it is deallocated, and a
 * statement the server forgot (`DISCARD ALL`) fails with 26000. Either is repaired on that connection —
 * DEALLOCATE, forget it in pg's record — and a statement that ran alone is run again once. Inside a
 * transaction the failure has already aborted the transaction, so it surfaces as `UNAVAILABLE`
 * (retryable): running the transaction again succeeds. A node migrates before it serves, so this meets
 * only a node whose tables another node migrated under it (a rolling upgrade).
 *
 * BEGIN rides with the transaction's first statement. Kysely sends `begin` and waits for its answer
 * before the first statement: a round trip of its own, one in four of SimpleBank's. The client answers
 * `begin` at once instead and sends BEGIN's Parse, Bind and Execute ahead of the first statement's own
 * messages, in the same write, before their one Sync: PostgreSQL runs both and answers once. Should the
 * BEGIN fail, the server skips the statement (an extended-protocol error skips to the Sync), so nothing
 * runs outside a transaction. A transaction whose first statement is not a named one (no parameters,
 * not preparable) sends BEGIN alone first, as before; one that ends with no statement sends nothing.
 *
 * COMMIT can ride with the last statement likewise: a compiled query marked by `committing` (a unit of
 * work's outbox insert, written right before it commits) is sent with COMMIT's Parse, Bind and
 * Execute after its own, before the Sync, and Kysely's COMMIT that follows is answered at once if all
 * went through. A statement that fails makes the server skip the COMMIT (its transaction stays open,
 * aborted), a COMMIT the server refused ended it: either way Kysely's COMMIT or ROLLBACK after it sends a
 * ROLLBACK, and its COMMIT is answered ROLLBACK (Kysely then fails the commit), as PostgreSQL answers a
 * COMMIT in an aborted transaction (carried-commit.ts decides, for PGlite too). A unit that only emits
 * events is then one round trip in all.
 */

/** Names a connection keeps prepared unless told otherwise: ample for a service's fixed statements. */
export const DEFAULT_PREPARED_STATEMENTS_PER_CONNECTION = 256;

/** The first keywords of the statements that are prepared. */
const PREPARABLE = new Set(['select', 'insert', 'update', 'delete', 'with', 'merge', 'values', 'table']);

/**
 * Statement text → its prepared statement's name, or null for a text never prepared: one map lookup
 * instead of a hash per query. Shared by every pool (a name depends on the text alone) and bounded:
 * emptied when full, which costs only hashing again.
 */
const namesByText = new Map<string, string | null>();
const MAX_REMEMBERED_TEXTS = 4096;

/** The name a statement is prepared under, or undefined if it is not to be prepared. */
export function preparedStatementName(text: string): string | undefined {
  let name = namesByText.get(text);
  if (name === undefined) {
    const keyword = /^\s*([a-z]+)/i.exec(text)?.[1]?.toLowerCase();
    // 80 bits of SHA-1: two texts of one service sharing a name is beyond any plausible count.
    name = keyword && PREPARABLE.has(keyword) ? `chassis_${hash('sha1', text).slice(0, 20)}` : null;
    if (namesByText.size >= MAX_REMEMBERED_TEXTS) namesByText.clear();
    namesByText.set(text, name);
  }
  return name ?? undefined;
}

/** pg's record of a connection's parsed statements (name → text), which its types leave out. */
interface ParsedStatements {
  connection: { parsedStatements: Record<string, string> };
}

type QueryFunction = (config: unknown, values?: unknown, callback?: unknown) => unknown;

/** SQLSTATE `feature_not_supported`, which this message makes the plan-cache case. */
const FEATURE_NOT_SUPPORTED = '0A000';
/** SQLSTATE `invalid_sql_statement_name`: the server has no statement of that name. */
const NO_SUCH_STATEMENT = '26000';

/**
 * BEGIN as an unnamed statement, bound and executed, with no Sync: what goes ahead of a transaction's
 * first statement (see BEGIN above). Parse `P` (no name, `begin`, no parameter types), Bind `B` (unnamed
 * portal and statement, no parameters, no result formats), Execute `E` (unnamed portal, every row).
 */
const BEGIN_MESSAGES = Buffer.from([
  0x50, 0, 0, 0, 13, 0, 0x62, 0x65, 0x67, 0x69, 0x6e, 0, 0, 0, 0x42, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0x45, 0, 0, 0,
  9, 0, 0, 0, 0, 0,
]);

/** pg's connection as a query's `prepare` sees it, which its types leave out. */
interface WireConnection {
  parsedStatements: Record<string, string>;
  stream: { writable: boolean; write(chunk: Uint8Array): boolean };
}

/**
 * COMMIT as an unnamed statement, bound and executed, with no Sync: what goes after the statement a
 * transaction ends with (see COMMIT above). The same three messages as BEGIN's, with `commit`.
 */
const COMMIT_MESSAGES = Buffer.from([
  0x50, 0, 0, 0, 14, 0, 0x63, 0x6f, 0x6d, 0x6d, 0x69, 0x74, 0, 0, 0, 0x42, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0x45, 0,
  0, 0, 9, 0, 0, 0, 0, 0,
]);

/** A compiled query that is its transaction's last statement: see `committing`. */
export type CommittingQuery<R> = CompiledQuery<R> & { readonly commitsTransaction: true };

/**
 * Marks `query` as the statement its transaction ends with (nothing runs after it but the COMMIT): on a
 * connection that reads the mark (`carryCommits`) the COMMIT goes with it, in the same round trip, and
 * the transaction's own COMMIT is answered at once (see COMMIT above; on PGlite, pglite-prepared.ts).
 * Elsewhere (MariaDB) the mark is not read and the statement runs as it is.
 */
export function committing<R>(query: CompiledQuery<R>): CommittingQuery<R> {
  return { ...query, commitsTransaction: true };
}

function isCommitting(query: CompiledQuery): boolean {
  return (query as Partial<CommittingQuery<unknown>>).commitsTransaction === true;
}

/**
 * Set while a Kysely connection hands a `committing` query to its pg client: the client's `query` reads
 * and clears it on the call it is given. Kysely's connection calls `client.query` before it first awaits,
 * so the mark reaches that call and no other; should it ever not, the mark is cleared unread and the
 * statement runs without the COMMIT (Kysely's own COMMIT then goes to the server: one round trip more).
 */
let commitWithNextQuery = false;

/**
 * Whether the statement a client's `query` was just given is `committing`: read once, on that call, before
 * anything awaits (see `commitWithNextQuery`).
 */
export function takeCommitMark(): boolean {
  const mark = commitWithNextQuery;
  commitWithNextQuery = false;
  return mark;
}

/**
 * Makes a Kysely connection to PostgreSQL (one whose client `prepareRepeatedStatements` set up, or
 * PGlite's) pass the `committing` mark of a compiled query on to its client. For `PostgresDialect`'s
 * `onCreateConnection`.
 */
export function carryCommits(connection: DatabaseConnection): void {
  const execute = connection.executeQuery.bind(connection);
  connection.executeQuery = <R>(query: CompiledQuery): Promise<QueryResult<R>> => {
    if (!isCommitting(query)) return execute<R>(query);
    commitWithNextQuery = true;
    try {
      return execute<R>(query);
    } finally {
      commitWithNextQuery = false;
    }
  };
}

/** What pg's Query does that its types leave out: the hooks a subclass adds BEGIN and COMMIT through. */
interface QueryInternals {
  prepare(connection: WireConnection): void;
  handleCommandComplete(message: unknown, connection: WireConnection): void;
  handleRowDescription(message: { fields: unknown[] }): void;
  _getRows(connection: WireConnection & { execute(c: unknown): void; sync(): void }, rows: unknown): void;
}

/** pg's Result as a query fills it from a RowDescription, which its types leave out. */
interface ResultInternals {
  fields: unknown[];
  _parsers: unknown[] | undefined;
  _prebuiltEmptyResultObject: unknown;
}

/** A prepared statement's RowDescription as pg made it into a result: its fields and their parsers. */
interface RowShape {
  fields: unknown[];
  parsers: unknown[] | undefined;
  emptyRow: unknown;
}

/**
 * The row shapes of one connection's prepared statements, by name, and the switch that has its next
 * Describe left unsent. pg sends Describe (portal) with every Execute, and the server answers with the
 * statement's RowDescription, which pg parses and turns into a parser per column (`addFields`) — each
 * time, for a statement whose columns cannot change while it stays prepared (a change of its tables'
 * columns fails it with `cached plan must not change result type`, which unprepares it, shape and all).
 * So a prepared statement's shape is kept from its first run, and later runs send no Describe.
 */
class RowShapes {
  readonly byName = new Map<string, RowShape>();
  skipDescribe = false;

  /** Makes `connection.describe` honour `skipDescribe`. */
  install(connection: { describe(message: unknown): void }): void {
    const describe = connection.describe.bind(connection);
    connection.describe = (message: unknown) => {
      if (this.skipDescribe) {
        this.skipDescribe = false;
        return;
      }
      describe(message);
    };
  }
}

const queryProto = pg.Query.prototype as unknown as QueryInternals;

/**
 * A named statement, which keeps its row shape after its first run (see RowShapes), with BEGIN before
 * it, COMMIT after it, both or neither, in the same round trip, before one Sync. Their answers are not
 * the statement's: their CommandCompletes are passed over, and BEGIN's ParseComplete — which pg records
 * as the named statement's — is undone unless the statement was parsed already (the statement's own
 * ParseComplete, which follows, records it again). An error anywhere makes the server skip the rest up
 * to the Sync: a failed BEGIN runs nothing, a failed statement no COMMIT.
 */
class WrappedQuery extends pg.Query {
  readonly #begin: boolean;
  readonly #commit: boolean;
  readonly #shapes: RowShapes;
  readonly #text: string;
  #completes = 0;
  #parsedBefore = false;
  /** The statement's row shape, known from an earlier run: no Describe is sent, no RowDescription comes. */
  #shape: RowShape | undefined;

  constructor(text: string, values: unknown[], begin: boolean, commit: boolean, shapes: RowShapes) {
    super(text, values);
    this.#begin = begin;
    this.#commit = commit;
    this.#shapes = shapes;
    this.#text = text;
  }

  prepare(connection: WireConnection): void {
    const name = (this as { name?: string }).name;
    this.#parsedBefore = name !== undefined && connection.parsedStatements[name] !== undefined;
    // Only a statement parsed with this very text: a name being parsed anew describes itself again.
    this.#shape =
      name !== undefined && connection.parsedStatements[name] === this.#text
        ? this.#shapes.byName.get(name)
        : undefined;
    // pg corks the stream around `prepare`: all of it leaves in one write.
    if (this.#begin && connection.stream.writable) connection.stream.write(BEGIN_MESSAGES);
    if (this.#shape) this.#shapes.skipDescribe = true;
    try {
      queryProto.prepare.call(this, connection);
    } finally {
      // Bind may have failed before the Describe it was to replace.
      this.#shapes.skipDescribe = false;
    }
    if (this.#shape) this.#describeFrom(this.#shape);
  }

  /** What pg's `handleRowDescription` does, from the kept shape instead of a RowDescription. */
  #describeFrom(shape: RowShape): void {
    const self = this as unknown as {
      _checkForMultirow(): void;
      _result: ResultInternals;
      _accumulateRows: boolean;
      callback: unknown;
    };
    self._checkForMultirow();
    self._result.fields = shape.fields;
    self._result._parsers = shape.parsers;
    self._result._prebuiltEmptyResultObject = shape.emptyRow;
    self._accumulateRows = Boolean(self.callback) || this.listeners('row').length === 0;
  }

  handleRowDescription(message: { fields: unknown[] }): void {
    queryProto.handleRowDescription.call(this, message);
    const name = (this as { name?: string }).name;
    if (name === undefined) return;
    const result = (this as unknown as { _result: ResultInternals })._result;
    this.#shapes.byName.set(name, {
      fields: result.fields,
      parsers: result._parsers,
      emptyRow: result._prebuiltEmptyResultObject,
    });
  }

  /** pg's Execute and Sync of the statement, COMMIT between them. */
  _getRows(connection: WireConnection & { execute(c: unknown): void; sync(): void }, rows: unknown): void {
    if (!this.#commit || rows) {
      queryProto._getRows.call(this, connection, rows);
      return;
    }
    connection.execute({ portal: (this as { portal?: string }).portal, rows });
    if (connection.stream.writable) connection.stream.write(COMMIT_MESSAGES);
    connection.sync();
  }

  handleCommandComplete(message: unknown, connection: WireConnection): void {
    const index = this.#completes++;
    if (this.#begin && index === 0) {
      const name = (this as { name?: string }).name;
      if (name !== undefined && !this.#parsedBefore) delete connection.parsedStatements[name];
      return;
    }
    // The statement's is the one after BEGIN's; COMMIT's comes after it.
    if (this.#commit && index === (this.#begin ? 2 : 1)) return;
    queryProto.handleCommandComplete.call(this, message, connection);
  }
}

/** What Kysely reads of BEGIN's, COMMIT's or ROLLBACK's answer. */
function commandResult(command: string): pg.QueryResult {
  return { command, rowCount: null, oid: 0, rows: [], fields: [] };
}

/** `begin`, `commit` or `rollback` as Kysely sends them: the text alone, no parameters. */
function transactionControl(
  config: unknown,
  values: unknown,
  callback: unknown,
): 'begin' | 'commit' | 'rollback' | undefined {
  if (typeof config !== 'string' || callback !== undefined) return undefined;
  if (values !== undefined && !(Array.isArray(values) && values.length === 0)) return undefined;
  const command = nextCommand(config);
  return command === 'statement' ? undefined : command;
}

/**
 * Makes `client` run its repeated statements as named prepared statements, at most `limit` names, and
 * send a transaction's BEGIN with its first named statement (see BEGIN above).
 */
export function prepareRepeatedStatements(client: pg.ClientBase, limit: number): void {
  if (limit <= 0) return;
  const send = client.query as QueryFunction;
  const parsed = (client as unknown as ParsedStatements).connection.parsedStatements;
  const shapes = new RowShapes();
  shapes.install((client as unknown as { connection: { describe(message: unknown): void } }).connection);
  /** The names this connection has prepared (or is preparing): the count the limit bounds. */
  const prepared = new Set<string>();
  /** Names the server still holds with a plan that no longer fits: DEALLOCATE before their next use. */
  const stale = new Set<string>();

  const deallocate = async (name: string): Promise<void> => {
    stale.delete(name);
    try {
      await send.call(client, `deallocate ${name}`);
    } catch (error) {
      // Another query of this connection repaired the same name first.
      if ((error as { code?: unknown }).code !== NO_SUCH_STATEMENT) throw error;
    }
  };

  /**
   * `client.query({ name, text, values })`, without pg copying the config object property by property
   * (its `cloneQueryConfig`, ~1% of a SimpleBank process's CPU): a query made from the text alone is not
   * copied, and its name is set before it is queued.
   */
  const sendNamed = (
    name: string,
    text: string,
    values: unknown[],
    begin: boolean,
    commit: boolean,
  ): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const query = new WrappedQuery(text, values, begin, commit, shapes) as pg.Query & {
        name?: string;
        callback?: (error: Error | null, result: unknown) => void;
      };
      query.name = name;
      query.callback = (error, result) => (error ? reject(error) : resolve(result));
      send.call(client, query);
    });

  const runNamed = async (
    name: string,
    text: string,
    values: unknown[],
    begin: boolean,
    commit: boolean,
  ): Promise<unknown> => {
    for (let attempt = 1; ; attempt++) {
      if (stale.has(name)) {
        // In a failed transaction DEALLOCATE is refused too; unnamed, the statement fails as it should.
        if (client.getTransactionStatus() === 'E') return send.call(client, text, values);
        // Outside the transaction still to begin: DEALLOCATE is not transactional.
        await deallocate(name);
      }
      prepared.add(name);
      try {
        return await sendNamed(name, text, values, begin, commit);
      } catch (error) {
        // A statement the server refused to parse is not prepared; one that failed later is.
        if (parsed[name] === undefined) prepared.delete(name);
        const repair = repairFor(error);
        if (!repair) throw error;
        prepared.delete(name);
        delete parsed[name];
        shapes.byName.delete(name);
        if (repair === 'deallocate') stale.add(name);
        // Before the failed statement's ReadyForQuery or after it, 'I' says it ran alone.
        if (client.getTransactionStatus() !== 'I') {
          throw staleInTransaction(error);
        }
        if (attempt === 2) throw error;
      }
    }
  };

  /** Kysely's `begin` was answered and not sent yet: the next statement carries it. */
  let beginDeferred = false;
  /** The transaction ended with a statement that carried its COMMIT: how, for what Kysely sends after it. */
  let carried: CarriedOutcome | undefined;

  client.query = ((config: unknown, values?: unknown, callback?: unknown) => {
    // Read on this call only (see `carryCommits`).
    const commitRequested = takeCommitMark();
    const control = transactionControl(config, values, callback);
    if (carried !== undefined) {
      const { action, pending } = afterCarriedCommit(carried, control ?? 'statement');
      carried = pending;
      switch (action.do) {
        case 'answer':
          return Promise.resolve(commandResult(action.command));
        case 'refuse':
          return Promise.reject(new ChassisError('INTERNAL', action.reason));
        case 'roll back': {
          const rolledBack = send.call(client, 'rollback') as Promise<unknown>;
          return action.afterwards === 'answer'
            ? rolledBack.then(() => commandResult('ROLLBACK'))
            : rolledBack.then(() => client.query(config as string, values as unknown[]));
        }
      }
    }
    if (control === 'begin' && !beginDeferred && client.getTransactionStatus() === 'I') {
      beginDeferred = true;
      return Promise.resolve(commandResult('BEGIN'));
    }
    const begin = beginDeferred;
    beginDeferred = false;
    // A transaction that ran no statement: there is nothing to commit or roll back.
    if (begin && (control === 'commit' || control === 'rollback')) {
      return Promise.resolve(commandResult(control.toUpperCase()));
    }
    if (typeof config !== 'string' || !Array.isArray(values) || values.length === 0 || callback !== undefined) {
      return begin ? sendAfterBegin(config, values, callback) : send.call(client, config, values, callback);
    }
    const name = preparedStatementName(config);
    const usable =
      name !== undefined &&
      (prepared.has(name) || prepared.size < limit) &&
      // A name pg holds for another text (a hash collision) would be refused: run that text unnamed.
      (parsed[name] === undefined || parsed[name] === config);
    if (!usable) return begin ? sendAfterBegin(config, values) : send.call(client, config, values);
    // COMMIT rides with a statement that ends its transaction (`committing`), if a transaction is open.
    const commit = commitRequested && (begin || client.getTransactionStatus() === 'T');
    if (!commit) return runNamed(name, config, values, begin, false);
    return runNamed(name, config, values, begin, true).then(
      (result) => {
        carried = 'committed';
        return result;
      },
      (error: unknown) => {
        // Whether the statement or the COMMIT failed, nothing committed (see `afterCarriedCommit`).
        carried = 'failed';
        throw error;
      },
    );
  }) as typeof client.query;

  /** BEGIN on its own, then the statement once it has begun: for a first statement that is not named. */
  const sendAfterBegin = (config: unknown, values?: unknown, callback?: unknown): unknown => {
    const begun = send.call(client, 'begin') as Promise<unknown>;
    if (typeof config === 'string' && callback === undefined)
      return begun.then(() => send.call(client, config, values));
    // A submittable (a cursor) or a callback: pg hands it back at once, so it is queued behind BEGIN, which
    // pg sends first. BEGIN fails only with its connection, and then so does what was queued behind it.
    begun.catch(() => undefined);
    return send.call(client, config, values, callback);
  };
}

/**
 * A statement whose prepared plan no longer fits failed inside a transaction, which it aborted: the
 * whole transaction is worth running again. (PGlite's prepared statements fail the same way.)
 */
export function staleInTransaction(error: unknown): ChassisError {
  return new ChassisError(
    'UNAVAILABLE',
    `A prepared statement no longer fits its tables (they changed: a migration ran), so the transaction failed; run it again: ${(error as Error).message}`,
    { cause: error },
  );
}

/**
 * What repairs a failed named statement: none (an ordinary error), or its prepared plan's removal. On
 * PostgreSQL and PGlite alike.
 */
export function repairFor(error: unknown): 'deallocate' | 'forget' | undefined {
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (code === FEATURE_NOT_SUPPORTED && typeof message === 'string' && /cached plan must not change/.test(message)) {
    return 'deallocate';
  }
  if (code === NO_SUCH_STATEMENT) return 'forget';
  return undefined;
}
