import { randomUUID } from 'node:crypto';
import { defineService, handle, requireRole } from '@chassis/core';
import { database, sql } from '@chassis/data';
import { fromCents, toCents } from '../../contracts/common.ts';
import { createProduct, getProduct, getProducts, ProductNotFound, searchProducts } from '../../contracts/products.ts';

interface ProductsTables {
  products: { id: string; name: string; description: string; price_cents: number; created_at: Date };
}

type ProductRow = ProductsTables['products'];

const COLUMNS = ['id', 'name', 'description', 'price_cents', 'created_at'] as const;

function view(row: ProductRow) {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    price: fromCents(Number(row.price_cents)),
    createdAt: new Date(row.created_at).toISOString(),
  };
}

/**
 * A text query as a tsquery of prefixes: "Walnut DE" → `walnut:* & de:*`. Only letters and digits are
 * kept, so nothing a client types can be tsquery syntax (an operator, a quote) and fail the query.
 */
export function prefixQuery(q: string): string | undefined {
  const words = q.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return words.length === 0 ? undefined : words.map((word) => `${word}:*`).join(' & ');
}

/**
 * The catalogue (its own schema). Search is case-insensitive and uses the GIN index on the generated
 * `search` column (`products_search`), not a scan with `ilike`.
 */
export function productsService() {
  return defineService({
    name: 'shop-products',
    version: '0.1.0',
    description: 'The catalogue: products, case-insensitive search',
    migrations: new URL('./migrations/', import.meta.url),
    actions: [
      handle(createProduct, async (input, ctx) => {
        requireRole(ctx.user, 'admin');
        const db = await database<ProductsTables>(ctx);
        const row: ProductRow = {
          id: randomUUID(),
          name: input.name,
          description: input.description,
          price_cents: toCents(input.price),
          created_at: new Date(),
        };
        await db.insertInto('products').values(row).execute();
        return view(row);
      }),
      handle(searchProducts, async ({ q, limit }, ctx) => {
        const db = await database<ProductsTables>(ctx);
        const query = q === undefined ? undefined : prefixQuery(q);
        let select = db.selectFrom('products').select(COLUMNS).orderBy('name').orderBy('id').limit(limit);
        if (query) select = select.where(sql<boolean>`search @@ to_tsquery('simple', ${query})`);
        return { products: (await select.execute()).map(view) };
      }),
      handle(getProduct, async ({ id }, ctx) => {
        const db = await database<ProductsTables>(ctx);
        const row = await db.selectFrom('products').select(COLUMNS).where('id', '=', id).executeTakeFirst();
        if (!row) throw ProductNotFound(`No product ${id}`, { id });
        return view(row);
      }),
      handle(getProducts, async ({ ids }, ctx) => {
        const db = await database<ProductsTables>(ctx);
        const rows = await db.selectFrom('products').select(COLUMNS).where('id', 'in', ids).execute();
        return { products: rows.map(view) };
      }),
    ],
  });
}
