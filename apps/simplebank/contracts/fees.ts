import { event } from '@chassis/core';
import { z } from 'zod';
import { AccountId, Money, OrderId, StockSymbol } from './common.ts';

const FeeFields = { orderId: OrderId, accountId: AccountId, symbol: StockSymbol, fee: Money };

export const feeCharged = event('fees.fee_charged', z.object(FeeFields));
export const feeRefunded = event('fees.fee_refunded', z.object(FeeFields));
/** The fee could not be taken (no cash free to take it from): the order goes on without one. */
export const chargeFailed = event('fees.charge_failed', z.object({ ...FeeFields, reason: z.string() }));
