import { ChassisError, defineService, handle, on } from '@chassis/core';
import { database } from '@chassis/data';
import type { NewsType } from '../../contracts/common.ts';
import { type News, newsByType } from '../../contracts/news.ts';

interface ReadModel {
  news: { id: number; version: number; created_at: string; doc: News | string };
}

const parsed = (doc: News | string): News => (typeof doc === 'string' ? JSON.parse(doc) : doc);

/**
 * The query side of one news type (`query-<type>`): the latest version of each item, kept from the
 * command side's `replicate_db_event`s (CQRS), so that reads never touch the event store.
 */
export function newsQueryService(type: NewsType) {
  const contracts = newsByType[type];
  return defineService({
    name: contracts.query,
    version: '0.1.0',
    description: `The query side of ${type} news: the latest version of each item`,
    migrations: new URL('./migrations/', import.meta.url),
    events: [
      on(
        contracts.replicateDbEvent,
        async (news, ctx) => {
          const db = await database<ReadModel>(ctx);
          const doc = JSON.stringify(news);
          await db
            .insertInto('news')
            .values({ id: news.id, version: news.version, created_at: news.created_at, doc })
            .onConflict((oc) =>
              oc.column('id').doUpdateSet({ version: news.version, doc }).where('news.version', '<', news.version),
            )
            .execute();
        },
        // A versioned upsert: a version delivered again, or late, changes nothing.
        { idempotent: true },
      ),
    ],
    actions: [
      handle(contracts.getNews, async ({ id }, ctx) => {
        const db = await database<ReadModel>(ctx);
        const row = await db.selectFrom('news').select('doc').where('id', '=', id).executeTakeFirst();
        if (!row) throw new ChassisError('NOT_FOUND', `No ${type} news ${id}`, { data: { id, type } });
        return parsed(row.doc);
      }),
      handle(contracts.getAllNews, async ({ page, limit }, ctx) => {
        const db = await database<ReadModel>(ctx);
        const rows = await db
          .selectFrom('news')
          .select('doc')
          .orderBy('created_at', 'desc')
          .orderBy('id', 'desc')
          .limit(limit)
          .offset((page - 1) * limit)
          .execute();
        return { page, limit, news: rows.map((row) => parsed(row.doc)) };
      }),
    ],
  });
}
