import { defineService, handle, on } from '@chassis/core';
import { database, sql } from '@chassis/data';
import { orderConfirmed } from '../../contracts/orders.ts';
import { getRecommendations } from '../../contracts/recommendations.ts';
import { requireSelf } from '../shared/access.ts';

interface RecommendationsTables {
  purchases: { user_id: string; product_id: string; name: string; quantity: number };
}

/** Raw SQL is not rewritten onto the service's schema as the query builder's statements are: named in full. */
const purchases = sql.id('shop-recommendations', 'purchases');

interface Candidate {
  product_id: string;
  name: string;
  score: number;
}

/**
 * Recommendations from the order history (its own copy of it, from `order_confirmed`): first what the
 * shoppers who bought what this user bought also bought, then the most bought products; never what the
 * user already has.
 */
export function recommendationsService() {
  return defineService({
    name: 'shop-recommendations',
    version: '0.1.0',
    description: 'Recommended products, from the order history',
    migrations: new URL('./migrations/', import.meta.url),
    actions: [
      handle(getRecommendations, async ({ userId, limit }, ctx) => {
        requireSelf(ctx.user, userId, 'The recommendations');
        const db = await database<RecommendationsTables>(ctx);
        const together = await sql<Candidate>`
          select other.product_id, min(other.name) as name, count(distinct other.user_id)::int as score
          from ${purchases} mine
          join ${purchases} peer on peer.product_id = mine.product_id and peer.user_id <> mine.user_id
          join ${purchases} other on other.user_id = peer.user_id
          where mine.user_id = ${userId}
            and other.product_id not in (select product_id from ${purchases} where user_id = ${userId})
          group by other.product_id
          order by score desc, name
          limit ${limit}`.execute(db);
        const chosen: { productId: string; name: string; score: number; reason: 'bought_together' | 'popular' }[] =
          together.rows.map((row) => ({
            productId: row.product_id,
            name: row.name,
            score: Number(row.score),
            reason: 'bought_together' as const,
          }));
        if (chosen.length < limit) {
          const popular = await sql<Candidate>`
            select product_id, min(name) as name, count(distinct user_id)::int as score
            from ${purchases}
            where product_id not in (select product_id from ${purchases} where user_id = ${userId})
            group by product_id
            order by score desc, name
            limit ${limit}`.execute(db);
          for (const row of popular.rows) {
            if (chosen.length >= limit) break;
            if (chosen.some((c) => c.productId === row.product_id)) continue;
            chosen.push({ productId: row.product_id, name: row.name, score: Number(row.score), reason: 'popular' });
          }
        }
        return { userId, products: chosen };
      }),
    ],
    events: [
      on(orderConfirmed, async (order, ctx) => {
        const db = await database<RecommendationsTables>(ctx);
        for (const item of order.items) {
          await db
            .insertInto('purchases')
            .values({ user_id: order.userId, product_id: item.productId, name: item.name, quantity: item.quantity })
            .onConflict((oc) =>
              oc
                .columns(['user_id', 'product_id'])
                .doUpdateSet({ quantity: sql`purchases.quantity + excluded.quantity` }),
            )
            .execute();
        }
      }),
    ],
  });
}
