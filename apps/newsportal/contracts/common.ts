import { z } from 'zod';

/** The news types of the portal: each is one pair of services (command and query) of the same code. */
export const NEWS_TYPES = ['famous', 'politics', 'sports'] as const;
export const NewsType = z.enum(NEWS_TYPES, { message: 'a news type is famous, politics or sports' });
export type NewsType = z.output<typeof NewsType>;

/** Ids are PostgreSQL `serial`s: positive 32-bit integers (gRPC's int32 carries them too). */
export const Id = z.number().int().positive().max(2_147_483_647);
export const Version = z.number().int().positive();
export const Page = z.number().int().positive().max(100_000).default(1);
/** How many items one page holds. */
export const Limit = z.number().int().min(1).max(10).default(10);
