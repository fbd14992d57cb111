import { z } from 'zod';

/**
 * SimpleBank's sell order: what every contender of the RPC benchmarks sends and gets back, so that the
 * local and the NATS cases measure the same message.
 */
export const sellOrder = { accountId: '101', symbol: 'BHP', quantity: 10 };
export type SellOrder = typeof sellOrder;

/** The Chassis contract's schema of a sell order: the checks SimpleBank's own contract makes. */
export const sellOrderSchema = z.object({
  accountId: z.string().regex(/^\d+$/),
  symbol: z.string().regex(/^[A-Z]{1,5}$/),
  quantity: z.number().int().positive(),
});

/** Moleculer's `params` for a sell order (fastest-validator): the same checks as `sellOrderSchema`. */
export const sellOrderParams = {
  accountId: { type: 'string', pattern: /^\d+$/ },
  symbol: { type: 'string', pattern: /^[A-Z]{1,5}$/ },
  quantity: { type: 'number', integer: true, positive: true },
} as const;
