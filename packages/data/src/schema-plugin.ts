import {
  AliasNode,
  IdentifierNode,
  JoinNode,
  type KyselyPlugin,
  ListNode,
  type OperationNode,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  TableNode,
  type UnknownRow,
  UsingNode,
} from 'kysely';

/**
 * Kysely's `withSchema(schema)`, for less: the same SQL, but made by a walk that copies only the path to
 * what it qualifies. Kysely's `WithSchemaPlugin` rebuilds every node of every query (its transformer
 * copies the whole tree), which doubled the cost of building and compiling a handler's statement — about
 * 4 µs of the 8 a typical statement took, ~50 statements per SimpleBank order. Here a statement's tree
 * is walked once and shared where nothing changed; the rules are `WithSchemaTransformer`'s (kysely
 * 0.29), and a test compares both on a range of statements:
 *
 * - a table named in a statement's `from`, `into`, `table`, `joins` or `using` gets the schema wherever its
 *   name appears in that statement (its column references included), unless it is one of the statement's
 *   CTEs or already has a schema;
 * - `references` of a foreign key always gets it;
 * - `json_agg(t)`, `to_json(t)` and `for update of t` leave a bare table name bare (it names a row, not
 *   a table).
 */
export function schemaPlugin(schema: string): KyselyPlugin {
  return new SchemaPlugin(schema);
}

const ROOT_KINDS = new Set([
  'AlterTableNode',
  'AlterTypeNode',
  'CreateIndexNode',
  'CreateSchemaNode',
  'CreateTableNode',
  'CreateTypeNode',
  'CreateViewNode',
  'DeleteQueryNode',
  'DropIndexNode',
  'DropSchemaNode',
  'DropTableNode',
  'DropTypeNode',
  'RefreshMaterializedViewNode',
  'DropViewNode',
  'InsertQueryNode',
  'RawNode',
  'SelectQueryNode',
  'UpdateQueryNode',
  'MergeQueryNode',
]);

/** Nodes whose properties hold data, not nodes: never walked into (a JSON value may have a `kind`). */
const LEAF_KINDS = new Set(['ValueNode', 'PrimitiveValueListNode', 'IdentifierNode', 'DefaultInsertValueNode']);

const SCHEMALESS_FUNCTIONS = new Set(['json_agg', 'to_json']);

type Node = OperationNode & Record<string, unknown>;

function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && typeof (value as { kind?: unknown }).kind === 'string';
}

class SchemaPlugin implements KyselyPlugin {
  readonly #schema: IdentifierNode;
  /** Table names of the statements being walked (outer ones included), and their CTE names. */
  readonly #tables = new Set<string>();
  readonly #ctes = new Set<string>();

  constructor(schema: string) {
    this.#schema = IdentifierNode.create(schema);
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return this.#walk(args.node as unknown as Node) as unknown as RootOperationNode;
  }

  // Not `async`: one promise fewer per statement (Kysely awaits whatever this returns).
  transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result as unknown as Promise<QueryResult<UnknownRow>>;
  }

  #walk(node: Node): Node {
    if (ROOT_KINDS.has(node.kind)) return this.#walkRoot(node);
    switch (node.kind) {
      case 'SchemableIdentifierNode':
        return node.schema || !this.#tables.has((node.identifier as IdentifierNode).name)
          ? node
          : Object.freeze({ ...node, schema: this.#schema });
      case 'ReferencesNode': {
        const walked = this.#children(node) as Node & { table: TableNode };
        if (walked.table.table.schema) return walked;
        return Object.freeze({
          ...walked,
          table: TableNode.createWithSchema(this.#schema.name, walked.table.table.identifier.name),
        });
      }
      case 'FunctionNode':
        return SCHEMALESS_FUNCTIONS.has(node.func as string) ? this.#children(node, 'arguments') : this.#children(node);
      case 'AggregateFunctionNode':
        return SCHEMALESS_FUNCTIONS.has(node.func as string)
          ? this.#children(node, 'aggregated')
          : this.#children(node);
      case 'SelectModifierNode':
        return this.#children(node, 'of');
      default:
        return LEAF_KINDS.has(node.kind) ? node : this.#children(node);
    }
  }

  // Written without closures, iterators or arrays it does not need: it runs for every statement (and
  // every subquery), and its first form was the largest single allocation of a SimpleBank process.
  #walkRoot(node: Node): Node {
    let ctes: string[] | undefined;
    const withs = (node.with as { expressions?: readonly { name: { table: TableNode } }[] } | undefined)?.expressions;
    if (withs) {
      for (let i = 0; i < withs.length; i++) {
        const name = withs[i]!.name.table.table.identifier.name;
        if (this.#ctes.has(name)) continue;
        ctes ??= [];
        ctes.push(name);
      }
      if (ctes) for (let i = 0; i < ctes.length; i++) this.#ctes.add(ctes[i]!);
    }
    let tables: string[] | undefined;
    const name = node.name as Node | undefined;
    if (name?.kind === 'SchemableIdentifierNode')
      tables = this.#addTable(tables, (name.identifier as IdentifierNode).name);
    const froms = (node.from as { froms?: unknown[] } | undefined)?.froms;
    if (froms) for (let i = 0; i < froms.length; i++) tables = this.#fromExpression(tables, froms[i]);
    tables = this.#fromExpression(tables, node.into);
    tables = this.#fromExpression(tables, node.table);
    const joins = node.joins as JoinNode[] | undefined;
    if (joins) for (let i = 0; i < joins.length; i++) tables = this.#fromExpression(tables, joins[i]!.table);
    if (isNode(node.using)) {
      tables = this.#fromExpression(tables, JoinNode.is(node.using) ? node.using.table : node.using);
    }

    if (tables) for (let i = 0; i < tables.length; i++) this.#tables.add(tables[i]!);
    try {
      return this.#children(node);
    } finally {
      if (tables) for (let i = 0; i < tables.length; i++) this.#tables.delete(tables[i]!);
      if (ctes) for (let i = 0; i < ctes.length; i++) this.#ctes.delete(ctes[i]!);
    }
  }

  /** `tables` with `name` added, unless the walk already qualifies it, it is a CTE, or it is there. */
  #addTable(tables: string[] | undefined, name: string): string[] | undefined {
    if (this.#tables.has(name) || this.#ctes.has(name) || tables?.includes(name)) return tables;
    const added = tables ?? [];
    added.push(name);
    return added;
  }

  /** `tables` with the tables a `from`, `into`, `table`, join or `using` expression names. */
  #fromExpression(tables: string[] | undefined, expr: unknown): string[] | undefined {
    if (!isNode(expr)) return tables;
    if (TableNode.is(expr)) return this.#addTable(tables, expr.table.identifier.name);
    if (AliasNode.is(expr) && TableNode.is(expr.node)) return this.#addTable(tables, expr.node.table.identifier.name);
    if (ListNode.is(expr))
      for (let i = 0; i < expr.items.length; i++) tables = this.#fromExpression(tables, expr.items[i]);
    else if (UsingNode.is(expr))
      for (let i = 0; i < expr.tables.length; i++) tables = this.#fromExpression(tables, expr.tables[i]);
    return tables;
  }

  /**
   * The node with its child nodes walked: the same object when none changed. `bareTables` names a
   * property whose bare table names are left bare (the rows of `json_agg(t)`, `for update of t`).
   */
  #children(node: Node, bareTables?: string): Node {
    let copy: Node | undefined;
    const keys = Object.keys(node);
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!;
      const value = node[key];
      if (typeof value !== 'object' || value === null) continue;
      let walked: unknown = value;
      if (Array.isArray(value)) {
        let items: unknown[] | undefined;
        for (let i = 0; i < value.length; i++) {
          const item = value[i];
          if (!isNode(item)) continue;
          const next = key === bareTables && TableNode.is(item) && !item.table.schema ? item : this.#walk(item);
          if (next !== item) {
            items ??= value.slice();
            items[i] = next;
          }
        }
        if (items) walked = Object.freeze(items);
      } else if (isNode(value)) {
        walked = key === bareTables && TableNode.is(value) && !value.table.schema ? value : this.#walk(value);
      }
      if (walked !== value) {
        copy ??= { ...node };
        copy[key] = walked;
      }
    }
    return copy ? Object.freeze(copy) : node;
  }
}
