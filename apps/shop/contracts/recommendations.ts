import { action } from '@chassis/core';
import { z } from 'zod';
import { ProductId, UserId } from './common.ts';

export const Recommendation = z.object({
  productId: ProductId,
  name: z.string(),
  /** How many shoppers bought it (with something this user bought, or at all for the popular ones). */
  score: z.number().int(),
  reason: z.enum(['bought_together', 'popular']),
});

/** From the order history: what others bought with what this user bought, then what is popular. */
export const getRecommendations = action('shop-recommendations.getRecommendations', {
  input: z.object({ userId: UserId, limit: z.number().int().min(1).max(50).default(5) }),
  output: z.object({ userId: UserId, products: z.array(Recommendation) }),
  idempotent: true,
});
