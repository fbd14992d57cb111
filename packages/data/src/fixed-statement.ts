import { CompiledQuery, type Kysely, type QueryResult, type RawBuilder, RawNode } from 'kysely';
import type { AnyTables } from './database.ts';
import { committing } from './prepared-statements.ts';

/**
 * A statement whose text never changes, only its parameters: built and compiled once per SQL dialect,
 * then run as its text and the call's parameters. Kysely builds and compiles a statement on every call
 * — a tree of nodes, each plugin's walk over it, the compiler's walk that writes the text — which for
 * the data kit's own statements (an event store's append and locked read, the inbox claim), run several
 * times an order, is work whose result is the same string every time.
 *
 * `build` receives placeholders, one per parameter, and places them as `sql` template values; a
 * placeholder may be placed more than once. Nothing of it may depend on the call (table names are fixed
 * when the statement is made). The executor's plugins still see each statement — as a raw node of its
 * text, so that a plugin that counts statements counts it — but cannot change it: its names must be
 * qualified already (the schema plugin would leave them as they are).
 */
export class FixedStatement<Row, Parameters extends readonly unknown[]> {
  readonly #build: (...placeholders: Placeholder[]) => RawBuilder<Row>;
  readonly #arity: number;
  /** By the dialect's adapter (PostgreSQL and MariaDB write parameters differently). */
  readonly #compiled = new Map<unknown, Compiled>();

  constructor(arity: Parameters['length'], build: (...placeholders: Placeholder[]) => RawBuilder<Row>) {
    this.#arity = arity;
    this.#build = build;
  }

  execute(executor: Kysely<AnyTables>, ...parameters: Parameters): Promise<QueryResult<Row>> {
    return this.executeWith(executor, parameters);
  }

  /**
   * `execute`, with the parameters as one array; `commits`: the statement is its transaction's last, and
   * carries the COMMIT where the connection can (`committing`).
   */
  async executeWith(
    executor: Kysely<AnyTables>,
    parameters: Parameters,
    { commits = false }: { commits?: boolean } = {},
  ): Promise<QueryResult<Row>> {
    const queryExecutor = executor.getExecutor();
    let compiled = this.#compiled.get(queryExecutor.adapter.constructor);
    if (!compiled) {
      compiled = this.#compile(executor);
      this.#compiled.set(queryExecutor.adapter.constructor, compiled);
    }
    const values = new Array<unknown>(compiled.positions.length);
    for (let i = 0; i < values.length; i++) values[i] = parameters[compiled.positions[i]!];
    const query = CompiledQuery.raw(compiled.sql, values);
    if (queryExecutor.plugins.length > 0) queryExecutor.transformQuery(compiled.node, query.queryId);
    return (await executor.executeQuery(commits ? committing(query) : query)) as QueryResult<Row>;
  }

  #compile(executor: Kysely<AnyTables>): Compiled {
    const placeholders = Array.from({ length: this.#arity }, (_, index) => new Placeholder(index));
    // Without plugins: what they would add (the schema) the statement names itself.
    const { sql, parameters } = this.#build(...placeholders).compile(executor.withoutPlugins());
    const positions = parameters.map((parameter) => {
      if (!(parameter instanceof Placeholder)) {
        throw new TypeError(`A fixed statement has a parameter that is not a placeholder: ${String(parameter)}`);
      }
      return parameter.index;
    });
    return { sql, positions, node: RawNode.createWithSql(sql) };
  }
}

/**
 * Fixed statements made on first use by a key (a service, a shape of rows), each made once. Emptied when
 * `limit` are kept — keys that keep changing (an odd count of rows each time) cost only making them again.
 */
export class FixedStatements<Row, Parameters extends readonly unknown[]> {
  readonly #statements = new Map<string, FixedStatement<Row, Parameters>>();
  readonly #limit: number;

  constructor(limit = 256) {
    this.#limit = limit;
  }

  get(key: string, make: () => FixedStatement<Row, Parameters>): FixedStatement<Row, Parameters> {
    let statement = this.#statements.get(key);
    if (statement) return statement;
    statement = make();
    if (this.#statements.size >= this.#limit) this.#statements.clear();
    this.#statements.set(key, statement);
    return statement;
  }
}

/** Where a call's parameter goes in a fixed statement. */
export class Placeholder {
  readonly index: number;

  constructor(index: number) {
    this.index = index;
  }
}

interface Compiled {
  sql: string;
  /** For each parameter of the text, which of the call's parameters it is. */
  positions: number[];
  /** What the executor's plugins are shown. */
  node: RawNode;
}
