import { ChassisError, type Context, defineService, handle } from '@chassis/core';
import { database, type EventStore, openEventStore, quoteIdentifier, sql } from '@chassis/data';
import type { NewsType } from '../../contracts/common.ts';
import { newsByType } from '../../contracts/news.ts';
import { evolve, initialState, type NewsEvents, type NewsVersion, newsEvents, streamOf, view } from './news-item.ts';

/**
 * The command side of one news type (`command-<type>`), event-sourced: an item is a stream, each version
 * an event appended at the version the writer read (a stale version is a 409), in the same transaction
 * as the `replicate_db_event` that carries the new version to the query side (outbox).
 */
export function newsCommandService(type: NewsType) {
  const contracts = newsByType[type];
  const sequence = `${quoteIdentifier(contracts.command)}.news_ids`;
  let store: EventStore<NewsEvents> | undefined;
  const events = () => {
    if (!store) throw new ChassisError('UNAVAILABLE', `The ${contracts.command} service is starting`);
    return store;
  };

  /** Appends the item's next version and announces it; CONFLICT unless `expected` is its latest. */
  async function nextVersion(
    ctx: Context,
    id: number,
    expected: number,
    change: (item: NewsVersion) => NewsVersion,
    kind: 'NewsChanged' | 'NewsPublished',
  ) {
    const trx = await database(ctx);
    // Locked as read: two writers of one item take turns, and the second sees the first's version.
    const state = (
      await events().aggregate(streamOf(id), { initial: initialState, evolve, snapshots: false, lock: true, trx })
    ).state;
    if (!state.item) throw new ChassisError('NOT_FOUND', `No ${type} news ${id}`, { data: { id } });
    if (state.version !== expected) {
      throw new ChassisError(
        'CONFLICT',
        `${type} news ${id} is at version ${state.version}, not ${expected}: read it again and apply the change to it`,
        { data: { id, expected, actual: state.version } },
      );
    }
    const { events: stored } = await events().append(streamOf(id), [{ type: kind, data: change(state.item) }], {
      expectedVersion: expected,
      trx,
    });
    const news = view(id, type, stored.reduce(evolve, state));
    await ctx.emit(contracts.replicateDbEvent, news);
    return news;
  }

  return defineService({
    name: contracts.command,
    version: '0.1.0',
    description: `The command side of ${type} news: an event store of their versions`,
    migrations: new URL('./migrations/', import.meta.url),
    uses: [contracts.replicateDbEvent],
    start: async (service) => {
      store = await openEventStore(service, { schemas: newsEvents });
    },
    actions: [
      handle(contracts.addNews, async (input, ctx) => {
        if (input.id !== undefined && input.version !== undefined) {
          const { id, version, ...fields } = input;
          return nextVersion(ctx, id, version, (item) => ({ ...item, ...definedOnly(fields) }), 'NewsChanged');
        }
        const trx = await database(ctx);
        const reserved = await sql<{ id: string }>`select nextval(${sequence}::regclass) as id`.execute(trx);
        const id = Number(reserved.rows[0]!.id);
        const item: NewsVersion = {
          title: input.title!,
          content: input.content!,
          author: input.author!,
          tags: input.tags ?? [],
          created_at: new Date().toISOString(),
          published_at: null,
        };
        const { events: stored } = await events().append(streamOf(id), [{ type: 'NewsAdded', data: item }], {
          expectedVersion: 'no_stream',
          trx,
        });
        const news = view(id, type, stored.reduce(evolve, initialState));
        await ctx.emit(contracts.replicateDbEvent, news);
        ctx.log.info({ id, type }, 'news added');
        return news;
      }),
      handle(contracts.publishNews, ({ id, version }, ctx) =>
        nextVersion(ctx, id, version, (item) => ({ ...item, published_at: new Date().toISOString() }), 'NewsPublished'),
      ),
    ],
  });
}

function definedOnly<T extends object>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<T>;
}
