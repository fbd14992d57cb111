import type { StoredEventOf } from '@chassis/data';
import { z } from 'zod';
import type { NewsType } from '../../contracts/common.ts';
import type { News } from '../../contracts/news.ts';

const Version = z.object({
  title: z.string(),
  content: z.string(),
  author: z.string(),
  tags: z.array(z.string()),
  created_at: z.string(),
  published_at: z.string().nullable(),
});

/**
 * The events of one item's stream (`news-<id>`). Each carries the whole item as it is from then on: the
 * book's append-only table of versions, one event per row.
 */
export const newsEvents = { NewsAdded: Version, NewsChanged: Version, NewsPublished: Version };
export type NewsEvents = typeof newsEvents;
export type NewsVersion = z.output<typeof Version>;

export interface NewsState {
  version: number;
  item: NewsVersion | undefined;
}

export const streamOf = (id: number) => `news-${id}`;
export const initialState: NewsState = { version: 0, item: undefined };

export function evolve(_state: NewsState, event: StoredEventOf<NewsEvents>): NewsState {
  return { version: event.version, item: event.data };
}

export function view(id: number, type: NewsType, state: NewsState): News {
  return { id, version: state.version, news_type: type, ...state.item! };
}
