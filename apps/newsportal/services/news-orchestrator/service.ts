import { defineService, handle, isChassisError } from '@chassis/core';
import { NEWS_TYPES } from '../../contracts/common.ts';
import { type News, newsByType } from '../../contracts/news.ts';
import { createNews, getNews, listAllNews, listNews, newsRead, updateNews } from '../../contracts/orchestrator.ts';

export interface NewsOrchestratorOptions {
  /** How long the merged list waits for each type before leaving it out. Default 2 s. */
  partTimeoutMs?: number;
}

/**
 * The news orchestrator (the book's aggregator and branch patterns): routes each request to its type's
 * command or query service, asks every type at once for the merged list (a type that does not answer is
 * left out and named: a partial answer rather than none), and sends each reading by a known user to
 * recommendations. It owns no data.
 */
export function newsOrchestratorService(options: NewsOrchestratorOptions = {}) {
  const partTimeoutMs = options.partTimeoutMs ?? 2000;
  return defineService({
    name: 'news-orchestrator',
    version: '0.1.0',
    description: 'Routes news requests to their type’s services and merges the types',
    uses: [newsRead, ...Object.values(newsByType).flatMap((c) => [c.addNews, c.getNews, c.getAllNews])],
    actions: [
      handle(getNews, async ({ type, id, user_id }, ctx) => {
        const news = await ctx.call(newsByType[type].getNews, { id });
        if (user_id !== undefined) await ctx.emit(newsRead, { user_id, news });
        return { status: 'success' as const, news };
      }),
      handle(listNews, async ({ type, page, limit }, ctx) => {
        const found = await ctx.call(newsByType[type].getAllNews, { page, limit });
        return { status: 'success' as const, ...found };
      }),
      handle(listAllNews, async ({ page, limit }, ctx) => {
        const answers = await Promise.allSettled(
          NEWS_TYPES.map((type) =>
            ctx.call(newsByType[type].getAllNews, { page, limit }, { timeoutMs: partTimeoutMs }),
          ),
        );
        const news: News[] = [];
        const missing: { type: (typeof NEWS_TYPES)[number]; error: string }[] = [];
        answers.forEach((answer, index) => {
          if (answer.status === 'fulfilled') news.push(...answer.value.news);
          else {
            const reason = answer.reason;
            missing.push({ type: NEWS_TYPES[index]!, error: isChassisError(reason) ? reason.code : 'INTERNAL' });
          }
        });
        news.sort((a, b) => b.created_at.localeCompare(a.created_at) || b.id - a.id);
        return {
          status: missing.length === 0 ? ('success' as const) : ('partial' as const),
          page,
          limit,
          news,
          missing,
        };
      }),
      handle(createNews, async ({ type, ...fields }, ctx) => {
        const news = await ctx.call(newsByType[type].addNews, fields);
        return { status: 'success' as const, news };
      }),
      handle(updateNews, async ({ type, ...change }, ctx) => {
        const news = await ctx.call(newsByType[type].addNews, change);
        return { status: 'success' as const, news };
      }),
    ],
  });
}
