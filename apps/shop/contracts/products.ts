import { action, defineError } from '@chassis/core';
import { z } from 'zod';
import { Price, ProductId } from './common.ts';

export const Product = z.object({
  id: ProductId,
  name: z.string(),
  description: z.string(),
  price: z.number(),
  createdAt: z.string(),
});

export const ProductNotFound = defineError('PRODUCT_NOT_FOUND', { status: 404, retryable: false });

/** Product reads change only when an admin adds a product: callers keep an answer this long. */
const PRODUCT_READ_CACHE = { cache: { ttlMs: 2000 } };

export const createProduct = action('shop-products.createProduct', {
  input: z.object({
    name: z.string().trim().min(1).max(200),
    description: z.string().trim().max(5000).default(''),
    price: Price,
  }),
  output: Product,
  idempotent: false,
});

/** Case-insensitive search by words of the name and description (each word a prefix), by an index. */
export const searchProducts = action('shop-products.searchProducts', {
  input: z.object({
    q: z.string().trim().max(100).optional(),
    limit: z.number().int().min(1).max(100).default(50),
  }),
  output: z.object({ products: z.array(Product) }),
  idempotent: true,
  policies: PRODUCT_READ_CACHE,
});

export const getProduct = action('shop-products.getProduct', {
  input: z.object({ id: ProductId }),
  output: Product,
  idempotent: true,
  policies: PRODUCT_READ_CACHE,
});

/** Several products at once (an order's items): those that exist; the caller names the missing ones. */
export const getProducts = action('shop-products.getProducts', {
  input: z.object({ ids: z.array(ProductId).min(1).max(100) }),
  output: z.object({ products: z.array(Product) }),
  idempotent: true,
});
