/**
 * What a database was asked to do, counted where every query passes (the pool's connections): the
 * statements, and the transactions they ran in. The figures a data path is judged by — statements and
 * transactions per business operation — and the node's `chassis_db_*_total` metrics.
 */
export interface DatabaseUsage {
  /** Statements sent, whatever they do; BEGIN, COMMIT and ROLLBACK are not counted among them. */
  readonly statements: number;
  /**
   * Transactions ended by COMMIT, and statements sent outside any transaction, which PostgreSQL runs
   * and commits alone (as `pg_stat_database.xact_commit` counts them).
   */
  readonly commits: number;
  /** Transactions ended by ROLLBACK. */
  readonly rollbacks: number;
}

export class UsageCounter implements DatabaseUsage {
  statements = 0;
  commits = 0;
  rollbacks = 0;

  /** The counting of one connection, which knows whether that connection is inside a transaction. */
  connection(): (text: string) => void {
    let inTransaction = false;
    return (text) => {
      switch (firstWords(text)) {
        case 'begin':
        case 'start':
          inTransaction = true;
          return;
        case 'commit':
        case 'end':
          if (inTransaction) this.commits++;
          inTransaction = false;
          return;
        case 'rollback':
          if (inTransaction) this.rollbacks++;
          inTransaction = false;
          return;
        default:
          // Savepoints and `rollback to savepoint` included: they stay inside their transaction.
          this.statements++;
          if (!inTransaction) this.commits++;
      }
    };
  }
}

/**
 * Statement text → its verb: a service sends the same few dozen texts over and over, and the regular
 * expression's match (an array and two strings) was ~1% of what a SimpleBank process allocates. Bounded:
 * emptied when full, which costs only matching again.
 */
const verbsByText = new Map<string, string>();
const MAX_REMEMBERED_TEXTS = 4096;

/** The statement's verb, lower case; `rollback to …` is told apart from `rollback`. */
function firstWords(text: string): string {
  let verb = verbsByText.get(text);
  if (verb === undefined) {
    const match = /^\s*(\w+)(\s+to\b)?/i.exec(text);
    verb = !match ? '' : match[2] ? 'rollback to' : match[1]!.toLowerCase();
    if (verbsByText.size >= MAX_REMEMBERED_TEXTS) verbsByText.clear();
    verbsByText.set(text, verb);
  }
  return verb;
}
