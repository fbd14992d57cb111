import { ChassisError, type Context, defineService, handle, isChassisError, on } from '@chassis/core';
import { commit, database, sql } from '@chassis/data';
import type { Generated } from 'kysely';
import type { z } from 'zod';
import { newsRead } from '../../contracts/orchestrator.ts';
import { labelUsers, userLabels } from '../../contracts/recommendation.ts';
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

/**
 * Recommendations (the book's ch. 10–11): each reading links its reader to the item's labels (its tags)
 * in a graph of nodes and edges, in PostgreSQL; a user's labels, and a label's users, are read from it.
 */
export function recommendationService(options: RecommendationOptions = {}) {
  const fetchUser = options.fetchUser ?? userOverBus;

  async function node(
    db: Awaited<ReturnType<typeof database<Graph>>>,
    kind: 'user' | 'label',
    key: string,
    props = {},
  ) {
    const row = await db
      .insertInto('nodes')
      .values({ kind, key, props: JSON.stringify(props) })
      .onConflict((oc) => oc.columns(['kind', 'key']).doUpdateSet({ props: JSON.stringify(props) }))
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  }

  return defineService({
    name: 'recommendation',
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
        const rows = await db
          .selectFrom('nodes as reader')
          .innerJoin('edges', (join) =>
            join.onRef('edges.source', '=', 'reader.id').on('edges.kind', '=', 'read_about'),
          )
          .innerJoin('nodes as label', 'label.id', 'edges.target')
          .select('label.key')
          .where('reader.kind', '=', 'user')
          .where('reader.key', '=', String(id))
          .orderBy('label.key')
          .execute();
        if (rows.length === 0) {
          // No labels yet: a 404 only when there is no such user at all. The read ends before users is
          // asked (embedded, one PGlite connection serves both).
          await commit(ctx);
          if (!(await fetchUser(id, ctx))) throw new ChassisError('NOT_FOUND', `No user ${id}`, { data: { id } });
        }
        return rows.map((row) => ({ id: row.key }));
      }),
      handle(labelUsers, async ({ label }, ctx) => {
        const db = await database<Graph>(ctx);
        const rows = await db
          .selectFrom('nodes as label')
          .innerJoin('edges', (join) => join.onRef('edges.target', '=', 'label.id').on('edges.kind', '=', 'read_about'))
          .innerJoin('nodes as reader', 'reader.id', 'edges.source')
          .select(['reader.key', 'reader.props'])
          .where('label.kind', '=', 'label')
          .where('label.key', '=', label)
          .orderBy(sql`reader.key::integer`)
          .execute();
        return rows.map((row) => {
          const props: { name: string; email: string } =
            typeof row.props === 'string' ? JSON.parse(row.props) : row.props;
          return { id: Number(row.key), name: props.name, email: props.email };
        });
      }),
    ],
  });
}
