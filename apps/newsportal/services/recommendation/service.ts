import { ChassisError, type Context, defineService, handle, isChassisError, on } from '@chassis/core';
import { commit, database, sql } from '@chassis/data';
import type { Generated } from 'kysely';
import type { z } from 'zod';
import { newsRead } from '../../contracts/orchestrator.ts';
import { labelUsers, relatedLabels, userLabels } from '../../contracts/recommendation.ts';
import { getUser, type User } from '../../contracts/users.ts';

type UserData = z.output<typeof User>;

interface Graph {
  nodes: {
    id: Generated<number>;
    kind: 'user' | 'label';
    key: string;
    props: string | { name: string; email: string };
  };
  edges: { source: number; target: number; kind: string };
}

export interface RecommendationOptions {
  /**
   * How a reader is looked up; undefined when there is no such user. Default: `users.get_user` over the
   * bus. The system wires the users' gRPC `GetUserData.GetUser` here when it serves one.
   */
  fetchUser?: (id: number, ctx: Context) => Promise<UserData | undefined>;
}

async function userOverBus(id: number, ctx: Context): Promise<UserData | undefined> {
  try {
    return await ctx.call(getUser, { id });
  } catch (error) {
    if (isChassisError(error, 'NOT_FOUND')) return undefined;
    throw error;
  }
}

/** The service's name, and so its schema. */
const SERVICE = 'recommendation';

type GraphDb = Awaited<ReturnType<typeof database<Graph>>>;

/**
 * The graph's traversal, in place of Neo4j's: a recursive CTE `walk(id, hops, path)` over the "read
 * about" edges both ways (user → label → user → …) from one node, up to `maxHops` edges, never through a
 * node twice on one path (`path` lists the nodes from the start, 1-based as SQL arrays are). A user's
 * labels and a label's readers are the nodes one hop away; labels to recommend are three hops away (the
 * labels of those who read one's labels). Bounded by `maxHops`, as a Cypher pattern of fixed length is.
 */
function walkFrom(start: { kind: 'user' | 'label'; key: string }, maxHops: number) {
  const nodes = graphTable('nodes');
  const edges = graphTable('edges');
  return sql`
    with recursive walk(id, hops, path) as (
      select id, 0, array[id] from ${nodes} where kind = ${start.kind} and key = ${start.key}
      union all
      select next.id, walk.hops + 1, walk.path || next.id
      from walk
      join lateral (
        select target as id from ${edges} where source = walk.id and kind = 'read_about'
        union all
        select source as id from ${edges} where target = walk.id and kind = 'read_about'
      ) as next on true
      where walk.hops < ${maxHops} and next.id <> all(walk.path)
    )`;
}

/**
 * A table of the graph in raw SQL, named with its schema: the data kit's query builder adds the service's
 * schema (its name) to the tables it names, but not to raw SQL's.
 */
function graphTable(table: keyof Graph) {
  return sql.table(`${SERVICE}.${table}`);
}

/** The nodes one hop from `start`: a user's labels, or a label's readers. */
async function neighbours(db: GraphDb, start: { kind: 'user' | 'label'; key: string }) {
  const rows = await sql<{ key: string; props: string | { name: string; email: string } }>`
    ${walkFrom(start, 1)}
    select node.key, node.props from walk join ${graphTable('nodes')} as node on node.id = walk.id
    where walk.hops = 1`.execute(db);
  return rows.rows;
}

/**
 * Recommendations (the book's ch. 10–11): each reading links its reader to the item's labels (its tags)
 * in a graph of nodes and edges, in PostgreSQL; a user's labels, and a label's users, are read from it.
 */
export function recommendationService(options: RecommendationOptions = {}) {
  const fetchUser = options.fetchUser ?? userOverBus;

  /** A NOT_FOUND for a user with no labels yet who does not exist either. */
  async function requireUser(id: number, ctx: Context): Promise<void> {
    // The read ends before users is asked (embedded, one PGlite connection serves both).
    await commit(ctx);
    if (!(await fetchUser(id, ctx))) throw new ChassisError('NOT_FOUND', `No user ${id}`, { data: { id } });
  }

  async function node(db: GraphDb, kind: 'user' | 'label', key: string, props = {}) {
    const row = await db
      .insertInto('nodes')
      .values({ kind, key, props: JSON.stringify(props) })
      .onConflict((oc) => oc.columns(['kind', 'key']).doUpdateSet({ props: JSON.stringify(props) }))
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  }

  return defineService({
    name: SERVICE,
    version: '0.1.0',
    description: 'Which labels each user reads about: a graph in PostgreSQL',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [getUser],
    events: [
      on(newsRead, async ({ user_id, news }, ctx) => {
        const user = await fetchUser(user_id, ctx);
        if (!user) {
          // A cookie naming nobody: nothing to link, and retrying will not make the user exist.
          ctx.log.warn({ userId: user_id }, 'a reading by an unknown user was ignored');
          return;
        }
        const db = await database<Graph>(ctx);
        const source = await node(db, 'user', String(user.id), { name: user.name, email: user.email });
        for (const label of new Set(news.tags)) {
          const target = await node(db, 'label', label);
          await db
            .insertInto('edges')
            .values({ source, target, kind: 'read_about' })
            .onConflict((oc) => oc.doNothing())
            .execute();
        }
      }),
    ],
    actions: [
      handle(userLabels, async ({ id }, ctx) => {
        const db = await database<Graph>(ctx);
        const labels = (await neighbours(db, { kind: 'user', key: String(id) })).map((node) => node.key).sort();
        // No labels yet: a 404 only when there is no such user at all.
        if (labels.length === 0) await requireUser(id, ctx);
        return labels.map((label) => ({ id: label }));
      }),
      handle(labelUsers, async ({ label }, ctx) => {
        const db = await database<Graph>(ctx);
        const readers = (await neighbours(db, { kind: 'label', key: label })).sort(
          (a, b) => Number(a.key) - Number(b.key),
        );
        return readers.map((reader) => {
          const props: { name: string; email: string } =
            typeof reader.props === 'string' ? JSON.parse(reader.props) : reader.props;
          return { id: Number(reader.key), name: props.name, email: props.email };
        });
      }),
      handle(relatedLabels, async ({ id }, ctx) => {
        const db = await database<Graph>(ctx);
        // Three hops: the user (path[1]) → a label of theirs → another reader of it (path[3]) → that
        // reader's label; the user's own labels left out, each label ranked by its distinct co-readers.
        const related = await sql<{ id: string; readers: number }>`
          ${walkFrom({ kind: 'user', key: String(id) }, 3)}
          select node.key as id, count(distinct walk.path[3])::integer as readers
          from walk join ${graphTable('nodes')} as node on node.id = walk.id
          where walk.hops = 3 and walk.id not in (select id from walk where hops = 1)
          group by node.key
          order by readers desc, node.key`.execute(db);
        if (related.rows.length === 0) {
          const read = await neighbours(db, { kind: 'user', key: String(id) });
          if (read.length === 0) await requireUser(id, ctx);
        }
        return related.rows;
      }),
    ],
  });
}
