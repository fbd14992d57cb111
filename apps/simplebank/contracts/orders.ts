import { action, event } from '@chassis/core';
import { z } from 'zod';
import { AccountId, OrderId, OrderStatus, Quantity, StockSymbol } from './common.ts';

export const sellShares = action('orders.sellShares', {
  description: 'Places a sell order: reserves the shares, records the order and announces it.',
  input: z.object({ accountId: AccountId, symbol: StockSymbol, quantity: Quantity }),
  output: z.object({ orderId: OrderId, status: OrderStatus }),
  idempotent: false,
});

export const getOrder = action('orders.getOrder', {
  input: z.object({ orderId: OrderId }),
  output: z.object({
    id: OrderId,
    accountId: AccountId,
    side: z.enum(['sell', 'buy']),
    symbol: StockSymbol,
    quantity: Quantity,
    status: OrderStatus,
    history: z.array(z.object({ status: OrderStatus, at: z.string() })),
  }),
  idempotent: true,
});

export const orderCreated = event(
  'orders.order_created',
  z.object({
    orderId: OrderId,
    accountId: AccountId,
    side: z.enum(['sell', 'buy']),
    symbol: StockSymbol,
    quantity: Quantity,
    createdAt: z.string(),
  }),
);
