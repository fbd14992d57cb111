import { action, event } from '@chassis/core';
import { z } from 'zod';
import { Id, Limit, NewsType, Page } from './common.ts';
import { NewNews, News, NewsChange } from './news.ts';

const Found = z.object({ status: z.literal('success'), news: News });

export const getNews = action('news-orchestrator.get_news', {
  description: 'One item; with the reader’s user id, the reading is sent to recommendations.',
  input: z.object({ type: NewsType, id: Id, user_id: Id.optional() }),
  output: Found,
  idempotent: true,
});

export const listNews = action('news-orchestrator.list_news', {
  input: z.object({ type: NewsType, page: Page, limit: Limit }),
  output: z.object({ status: z.literal('success'), page: z.number(), limit: z.number(), news: z.array(News) }),
  idempotent: true,
});

export const listAllNews = action('news-orchestrator.list_all_news', {
  description:
    'A page of every type, asked in parallel and merged newest first; `partial` with the types that did not answer.',
  input: z.object({ page: Page, limit: Limit }),
  output: z.object({
    status: z.enum(['success', 'partial']),
    page: z.number(),
    limit: z.number(),
    news: z.array(News),
    missing: z.array(z.object({ type: NewsType, error: z.string() })),
  }),
  idempotent: true,
});

export const createNews = action('news-orchestrator.create_news', {
  input: NewNews.extend({ type: NewsType }),
  output: Found,
  idempotent: false,
});

export const updateNews = action('news-orchestrator.update_news', {
  description: 'The item’s next version; CONFLICT (409) when `version` is not its latest.',
  input: NewsChange.extend({ type: NewsType }),
  output: Found,
  idempotent: false,
});

/** The book's `recommendation_sender.receiver`: a user read an item. */
export const newsRead = event('news-orchestrator.recommendation_sender', z.object({ user_id: Id, news: News }));
