import { ChassisError } from '@chassis/core';
import { type messages, type PGlite, parse, protocol, type Results } from '@electric-sql/pglite';
import { afterCarriedCommit, type CarriedOutcome, nextCommand } from './carried-commit.ts';
import { preparedStatementName, repairFor, staleInTransaction } from './prepared-statements.ts';

/**
 * Named prepared statements on PGlite's one connection: what prepared-statements.ts gives PostgreSQL's.
 *
 * PGlite's `query(text, params)` sends the unnamed statement, as five calls into its WebAssembly
 * PostgreSQL (Parse, Describe, Bind, Describe, Execute, then Sync: each a pass of its main loop), and
 * PostgreSQL parses, analyses and plans the text every time. Here a text is Parsed under a name once,
 * and Described then (its parameter types, to serialize values as PGlite does, and its row
 * description); afterwards it runs as Bind, Execute and Sync in one `execProtocolStream` call. The
 * messages that come back are turned into rows by PGlite's own `parseResults` with PGlite's own
 * parsers, the row description learnt at preparation put in front: the rows, types and counts are
 * those `query` would have given (prepared-statements.pglite.test.ts holds the two to the same
 * answer). Measured in memory: ~60 µs of CPU a statement instead of ~160–320.
 *
 * The same rules as on PostgreSQL (see prepared-statements.ts): only statements with parameters, only
 * queries and DML (`preparedStatementName`), at most `limit` names. PGlite's connection lives as long
 * as the process, so past the limit new texts run unnamed for good.
 *
 * COMMIT rides with a transaction's last statement when it is marked so (`committing`, a unit of work's
 * outbox insert): its Bind and Execute go after the statement's, before the one Sync, and the `commit` that
 * follows is answered at once — COMMIT if both went through. A statement that fails makes PostgreSQL skip
 * the COMMIT (the transaction stays open, aborted); a COMMIT refused (a deferred constraint) ends it: either
 * way the statement's call fails, and the `commit` or `rollback` that follows sends PGlite a ROLLBACK, a
 * `commit` answered ROLLBACK. The same decision as on PostgreSQL (carried-commit.ts).
 *
 * A statement whose table changed under it fails with `cached plan must not change result type`
 * (0A000); one the server forgot (`DEALLOCATE ALL`), with 26000. Either is closed and forgotten, and a
 * statement that ran alone is prepared and run again once; inside a transaction the transaction has
 * already failed, so it surfaces as `UNAVAILABLE` (retryable), as on PostgreSQL.
 */

/** What this needs of PGlite: the class, since `execProtocolStream` is not on its interface. */
export type PgliteConnection = Pick<
  PGlite,
  'query' | 'runExclusive' | 'execProtocolStream' | 'serializers' | 'parsers' | 'closed'
>;

interface Prepared {
  readonly text: string;
  /** The parameters' type OIDs, as PostgreSQL inferred them: they pick each value's serializer. */
  readonly parameterTypes: number[];
  /** The row description (`Describe` of the statement), or undefined for a statement without rows. */
  readonly rowDescription: messages.RowDescriptionMessage | undefined;
}

const { serialize } = protocol;

/** The parts of every call that never change, serialized once. */
const EXECUTE = serialize.execute({});
const SYNC = serialize.sync();
const BIND_BEGIN = serialize.bind({ statement: 'chassis_begin', values: [] });
const BIND_COMMIT = serialize.bind({ statement: 'chassis_commit', values: [] });

/** What a BEGIN, COMMIT or ROLLBACK that was not sent answers (Kysely reads nothing of it). */
const NOTHING: Results<never> = { rows: [], fields: [], affectedRows: 0 };

/** A `commit` whose transaction rolled back instead (its carried COMMIT did not go through). */
const ROLLED_BACK: Results<never> = { rows: [], fields: [], affectedRows: 0 };

/** Whether `query` answered a `commit` with ROLLBACK: the pool tells Kysely so (its command tag). */
export function rolledBack(result: Results<unknown>): boolean {
  return result === ROLLED_BACK;
}

export class PglitePreparedStatements {
  private readonly lite: PgliteConnection;
  private readonly limit: number;
  /** Name → what was prepared under it. */
  private readonly prepared = new Map<string, Prepared>();
  /**
   * A BEGIN not sent yet: it goes in the same call as the transaction's first statement, one pass through
   * PGlite's WebAssembly fewer a transaction (an order in the embedded SimpleBank runs some 14). Nothing
   * can tell the difference: BEGIN does nothing a statement could see until a statement runs, and a
   * transaction that ran none ends without either being sent.
   */
  private beginDeferred = false;
  /** Kysely's `begin` was answered (sent or held back) and no `commit` or `rollback` yet. */
  private inTransaction = false;
  /** The transaction's last statement carried its COMMIT: how that went, for the `commit` that follows. */
  private carried: CarriedOutcome | undefined;

  /** PGlite's parsers and serializers, bytea's replaced by ones that give the same values faster. */
  private readonly parsers: PgliteConnection['parsers'];
  private readonly serializers: PgliteConnection['serializers'];

  constructor(lite: PgliteConnection, limit: number) {
    this.lite = lite;
    this.limit = limit;
    this.parsers = { ...lite.parsers, [BYTEA]: parseBytea };
    this.serializers = { ...lite.serializers, [BYTEA]: serializeBytea };
  }

  /**
   * Runs one statement as `lite.query(text, parameters)` would, prepared where the rules allow; `commits`:
   * it is its transaction's last, and carries the COMMIT (see above).
   */
  async query<R>(text: string, parameters: unknown[], commits = false): Promise<Results<R>> {
    if (this.carried !== undefined) {
      const { action, pending } = afterCarriedCommit(this.carried, nextCommand(text));
      this.carried = pending;
      switch (action.do) {
        case 'answer':
          this.inTransaction = false;
          return NOTHING as Results<R>;
        case 'refuse':
          throw new ChassisError('INTERNAL', action.reason);
        case 'roll back':
          this.inTransaction = false;
          await this.query('rollback', []);
          if (action.afterwards === 'answer') return (text === 'commit' ? ROLLED_BACK : NOTHING) as Results<R>;
      }
    }
    if (text === 'begin') this.inTransaction = true;
    else if (text === 'commit' || text === 'rollback') this.inTransaction = false;
    const name =
      this.limit === 0
        ? undefined
        : parameters.length > 0
          ? preparedStatementName(text)
          : isTransactionControl(text)
            ? `chassis_${text}`
            : undefined;
    const known = name === undefined ? undefined : this.prepared.get(name);
    const usable =
      name !== undefined &&
      !this.lite.closed &&
      // A name held for another text (a hash collision) runs unnamed.
      (known === undefined ? this.prepared.size < this.limit : known.text === text);
    if (usable && text === 'begin' && !this.beginDeferred) {
      // Sent with the transaction's first statement, in the same call (see `beginDeferred`).
      this.beginDeferred = true;
      return NOTHING as Results<R>;
    }
    if (this.beginDeferred && (text === 'commit' || text === 'rollback')) {
      // A transaction that ran no statement: there is nothing to end, since nothing began.
      this.beginDeferred = false;
      return NOTHING as Results<R>;
    }
    if (!usable) {
      await this.sendDeferredBegin();
      return this.lite.query<R>(text, parameters);
    }
    if (!(commits && this.inTransaction)) return this.lite.runExclusive(() => this.runNamed<R>(name, text, parameters));
    try {
      const result = await this.lite.runExclusive(() => this.runNamed<R>(name, text, parameters, true));
      this.carried = 'committed';
      return result;
    } catch (error) {
      this.carried = 'failed';
      throw error;
    }
  }

  /**
   * What goes before a statement the pool sends through `exec` (no parameters): it is refused after a
   * statement that carried its COMMIT, as `query` refuses one, and a BEGIN held back goes first.
   */
  async beforeExec(): Promise<void> {
    if (this.carried !== undefined) {
      const { action, pending } = afterCarriedCommit(this.carried, 'statement');
      this.carried = pending;
      if (action.do === 'refuse') throw new ChassisError('INTERNAL', action.reason);
    }
    await this.sendDeferredBegin();
  }

  /**
   * Sends a BEGIN held back for the transaction's first statement, before a statement that cannot carry it
   * (one that runs unnamed, or through `exec`).
   */
  private async sendDeferredBegin(): Promise<void> {
    if (!this.beginDeferred) return;
    this.beginDeferred = false;
    await this.lite.runExclusive(() => this.runNamed('chassis_begin', 'begin', []));
  }

  private async runNamed<R>(name: string, text: string, parameters: unknown[], commit = false): Promise<Results<R>> {
    for (let attempt = 1; ; attempt++) {
      const statement = this.prepared.get(name) ?? (await this.prepare(name, text, parameters));
      // BEGIN held back (see `beginDeferred`) goes first in the same call: its replies end at its
      // CommandComplete, and a statement that fails after it leaves the transaction failed ('E'), as it
      // would have after a BEGIN of its own.
      const begin = this.beginDeferred;
      if (begin) {
        if (!this.prepared.has('chassis_begin')) await this.prepare('chassis_begin', 'begin', []);
        this.beginDeferred = false;
      }
      if (commit && !this.prepared.has('chassis_commit')) await this.prepare('chassis_commit', 'commit', []);
      const values = parameters.map((value, i) => {
        if (value === null || value === undefined) return null;
        const serializer = this.serializers[statement.parameterTypes[i] as number];
        return serializer ? serializer(value) : (value as { toString(): string }).toString();
      });
      const message = concat(
        ...(begin ? [BIND_BEGIN, EXECUTE] : []),
        serialize.bind({ statement: name, values }),
        EXECUTE,
        ...(commit ? [BIND_COMMIT, EXECUTE] : []),
        SYNC,
      );
      // No sync to the file system after each call: PGlite's Node.js file systems (a folder, memory)
      // write through, their `syncToFs` does nothing, but asking for it costs a turn of PGlite's mutex.
      let replies = await this.lite.execProtocolStream(message, { throwOnError: false, syncToFs: false });
      if (begin) replies = replies.slice(replies.findIndex((reply) => reply.name === 'commandComplete') + 1);
      const error = failure(replies);
      if (!error) {
        const all = statement.rowDescription ? [statement.rowDescription, ...replies] : replies;
        return parse.parseResults(all, this.parsers)[0] as Results<R>;
      }
      if (!repairFor(error)) throw described(error, text, parameters);
      // The plan (and the row description learnt with it) no longer fits: close it, prepare it anew.
      this.prepared.delete(name);
      await this.lite.execProtocolStream(concat(serialize.close({ type: 'S', name }), serialize.sync()), {
        syncToFs: false,
        throwOnError: false,
      });
      if (transactionStatus(replies) !== 'I') {
        throw staleInTransaction(described(error, text, parameters));
      }
      if (attempt === 2) throw described(error, text, parameters);
    }
  }

  /** Parses and describes `text` under `name`; a text PostgreSQL refuses throws its error, as `query` would. */
  private async prepare(name: string, text: string, parameters: unknown[]): Promise<Prepared> {
    const replies = await this.lite.execProtocolStream(
      concat(serialize.parse({ name, text }), serialize.describe({ type: 'S', name }), serialize.sync()),
      { syncToFs: false, throwOnError: false },
    );
    const error = failure(replies);
    if (error) throw described(error, text, parameters);
    const statement: Prepared = {
      text,
      parameterTypes: parse.parseDescribeStatementResults(replies),
      rowDescription: replies.find((m): m is messages.RowDescriptionMessage => m.name === 'rowDescription'),
    };
    this.prepared.set(name, statement);
    return statement;
  }
}

/**
 * The unit of work's `begin`, `commit` and `rollback`, which Kysely sends as these exact texts. Prepared
 * too: PGlite's `exec` (the simple query protocol) costs some 150 µs more a call than a prepared statement's
 * Bind and Execute, and an order in the embedded SimpleBank runs some 17 transactions.
 */
export function isTransactionControl(text: string): boolean {
  return text === 'begin' || text === 'commit' || text === 'rollback';
}

function failure(replies: messages.BackendMessage[]): messages.DatabaseError | undefined {
  for (const reply of replies) if (reply.name === 'error') return reply as messages.DatabaseError;
  return undefined;
}

/** The status of the last ReadyForQuery: 'I' idle, 'T' in a transaction, 'E' in a failed one. */
function transactionStatus(replies: messages.BackendMessage[]): string | undefined {
  for (let i = replies.length - 1; i >= 0; i--) {
    const reply = replies[i] as messages.BackendMessage;
    if (reply.name === 'readyForQuery') return (reply as messages.ReadyForQueryMessage).status;
  }
  return undefined;
}

/** The error as `query` throws it: PGlite's `makePGliteError` adds the statement and its parameters. */
function described(error: messages.DatabaseError, text: string, parameters: unknown[]): messages.DatabaseError {
  return Object.assign(error, { query: text, params: parameters, queryOptions: undefined });
}

/**
 * bytea (an outbox row's body, an inbox's message) in PostgreSQL's hex text form, as PGlite's own parser
 * and serializer read and write it — with Buffer's hex codec instead of a parseInt or a padStart per
 * byte (which took ~20 µs a 300-byte body each way). A plain Uint8Array, as PGlite's parser gives.
 */
const BYTEA = 17;

function parseBytea(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.slice(2), 'hex'));
}

function serializeBytea(value: unknown): string {
  if (!(value instanceof Uint8Array)) throw new Error('Invalid input for bytea type');
  return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
