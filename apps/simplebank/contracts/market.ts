import { event } from '@chassis/core';
import { z } from 'zod';
import { Money, OrderRef } from './common.ts';

/** The exchange took the order. */
export const orderPlaced = event(
  'market.order_placed',
  OrderRef.extend({ exchangeOrderId: z.string(), notional: Money }),
);

/** The exchange filled the order at `price`. */
export const tradeExecuted = event(
  'market.trade_executed',
  OrderRef.extend({ exchangeOrderId: z.string(), price: Money }),
);

/** The exchange refused the order after taking it (or it could not be placed). */
export const exchangeRejected = event(
  'market.order_failed',
  OrderRef.extend({ exchangeOrderId: z.string().optional(), reason: z.string() }),
);
