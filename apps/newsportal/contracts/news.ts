import { action, event } from '@chassis/core';
import { z } from 'zod';
import { Id, Limit, NEWS_TYPES, NewsType, Page, Version } from './common.ts';

const Title = z.string().trim().min(1).max(200);
const Content = z.string().max(100_000);
const Author = z.string().trim().min(1).max(50);
const Tags = z.array(z.string().trim().min(1).max(50)).max(20);

/** A news item, one version of it (specs/newsportal.md). */
export const News = z.object({
  id: Id,
  version: Version,
  title: z.string(),
  content: z.string(),
  author: z.string(),
  created_at: z.string(),
  published_at: z.string().nullable(),
  news_type: NewsType,
  tags: z.array(z.string()),
});
export type News = z.output<typeof News>;

/** A new item's fields. */
export const NewNews = z.object({ title: Title, content: Content, author: Author, tags: Tags.default([]) });

/** An update: the item, the version it was read at (a stale one is a conflict), and what changes. */
export const NewsChange = z.object({
  id: Id,
  version: Version,
  title: Title.optional(),
  content: Content.optional(),
  author: Author.optional(),
  tags: Tags.optional(),
});

/** A new item names its title, content and author; a change names both the item and its version. */
function newOrChange(input: z.output<typeof NewsChange> | Partial<z.output<typeof NewsChange>>, ctx: z.RefinementCtx) {
  if ((input.id === undefined) !== (input.version === undefined)) {
    const missing = input.id === undefined ? 'id' : 'version';
    ctx.addIssue({ code: 'custom', path: [missing], message: 'a change gives both the id and the version it read' });
  }
  if (input.id === undefined) {
    for (const field of ['title', 'content', 'author'] as const) {
      if (input[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'a new item needs it' });
    }
  }
}

export const NewsPage = z.object({ page: z.number().int(), limit: z.number().int(), news: z.array(News) });

/**
 * The contracts of one news type's services, `command-<type>` and `query-<type>`: a type is
 * configuration, so the three types share this code and differ only in their names.
 */
export function newsContracts(type: NewsType) {
  const command = `command-${type}`;
  const query = `query-${type}`;
  return {
    type,
    command,
    query,
    addNews: action(`${command}.add_news`, {
      description: 'A new item (id from a sequence, version 1) or, with id and version, its next version.',
      input: NewsChange.partial({ id: true, version: true }).superRefine(newOrChange),
      output: News,
      idempotent: false,
    }),
    publishNews: action(`${command}.publish_news`, {
      description: 'Marks an item published now: its next version.',
      input: z.object({ id: Id, version: Version }),
      output: News,
      idempotent: false,
    }),
    replicateDbEvent: event(`${command}.replicate_db_event`, News),
    getNews: action(`${query}.get_news`, { input: z.object({ id: Id }), output: News, idempotent: true }),
    getAllNews: action(`${query}.get_all_news`, {
      description: 'The latest version of each item, newest first.',
      input: z.object({ page: Page, limit: Limit }),
      output: NewsPage,
      idempotent: true,
    }),
  };
}

export type NewsContracts = ReturnType<typeof newsContracts>;

export const newsByType: Readonly<Record<NewsType, NewsContracts>> = Object.fromEntries(
  NEWS_TYPES.map((type) => [type, newsContracts(type)]),
) as Record<NewsType, NewsContracts>;
