import { action } from '@chassis/core';
import { z } from 'zod';
import { ProductId, UserId } from './common.ts';

export const Review = z.object({
  id: z.string().uuid(),
  productId: ProductId,
  userId: UserId,
  username: z.string(),
  rating: z.number().int(),
  comment: z.string(),
  createdAt: z.string(),
});

export const addReview = action('shop-reviews.addReview', {
  input: z.object({
    productId: ProductId,
    rating: z.number().int().min(1).max(5),
    comment: z.string().trim().min(1).max(2000),
  }),
  output: Review,
  idempotent: false,
});

export const listReviews = action('shop-reviews.listReviews', {
  input: z.object({ productId: ProductId }),
  output: z.object({ reviews: z.array(Review) }),
  idempotent: true,
});

/** The newest reviews of any product: the BFFs' reviews part. */
export const recentReviews = action('shop-reviews.recentReviews', {
  input: z.object({ limit: z.number().int().min(1).max(100).default(20) }),
  output: z.object({ reviews: z.array(Review) }),
  idempotent: true,
});
