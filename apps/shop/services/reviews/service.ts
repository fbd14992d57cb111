import { randomUUID } from 'node:crypto';
import { defineService, handle, requireIdentity } from '@chassis/core';
import { database } from '@chassis/data';
import { getProduct } from '../../contracts/products.ts';
import { addReview, listReviews, recentReviews } from '../../contracts/reviews.ts';

interface ReviewsTables {
  reviews: {
    id: string;
    product_id: string;
    user_id: string;
    username: string;
    rating: number;
    comment: string;
    created_at: Date;
  };
}

type ReviewRow = ReviewsTables['reviews'];

function view(row: ReviewRow) {
  return {
    id: row.id,
    productId: row.product_id,
    userId: row.user_id,
    username: row.username,
    rating: row.rating,
    comment: row.comment,
    createdAt: new Date(row.created_at).toISOString(),
  };
}

/** Product reviews (their own schema). A review names a product the catalogue has (404 otherwise). */
export function reviewsService() {
  return defineService({
    name: 'shop-reviews',
    version: '0.1.0',
    description: 'Product reviews',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [getProduct],
    actions: [
      handle(addReview, async (input, ctx) => {
        const user = requireIdentity(ctx.user);
        // Asked before the transaction opens; PRODUCT_NOT_FOUND (404) goes back to the client as it is.
        await ctx.call(getProduct, { id: input.productId });
        const db = await database<ReviewsTables>(ctx);
        const row: ReviewRow = {
          id: randomUUID(),
          product_id: input.productId,
          user_id: user.subject,
          username: typeof user.claims.username === 'string' ? user.claims.username : user.subject,
          rating: input.rating,
          comment: input.comment,
          created_at: new Date(),
        };
        await db.insertInto('reviews').values(row).execute();
        return view(row);
      }),
      handle(listReviews, async ({ productId }, ctx) => {
        const db = await database<ReviewsTables>(ctx);
        const rows = await db
          .selectFrom('reviews')
          .selectAll()
          .where('product_id', '=', productId)
          .orderBy('created_at', 'desc')
          .limit(100)
          .execute();
        return { reviews: rows.map(view) };
      }),
      handle(recentReviews, async ({ limit }, ctx) => {
        const db = await database<ReviewsTables>(ctx);
        const rows = await db.selectFrom('reviews').selectAll().orderBy('created_at', 'desc').limit(limit).execute();
        return { reviews: rows.map(view) };
      }),
    ],
  });
}
