import { action } from '@chassis/core';
import { z } from 'zod';
import { AccountId, Money, StockSymbol } from './common.ts';
import { Order } from './orders.ts';

/** An account's orders, newest first (`GET /orders?accountId&page&size`), from the read model. */
export const listOrders = action('customer-orders.listOrders', {
  input: z.object({
    accountId: AccountId,
    page: z.number().int().min(1).default(1),
    size: z.number().int().min(1).max(100).default(20),
  }),
  output: z.object({ accountId: AccountId, page: z.number(), size: z.number(), orders: z.array(Order) }),
  idempotent: true,
});

/** Fees charged, net of refunds, per symbol (`GET /reports/fees?groupBy=symbol`, admins). */
export const feeReport = action('customer-orders.feeReport', {
  input: z.object({ groupBy: z.enum(['symbol', 'account']).default('symbol') }),
  output: z.object({
    groupBy: z.enum(['symbol', 'account']),
    rows: z.array(z.object({ key: z.union([StockSymbol, AccountId]), orders: z.number().int(), fees: Money })),
    total: Money,
  }),
  idempotent: true,
});
