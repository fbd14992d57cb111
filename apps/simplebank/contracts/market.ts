import { event } from '@chassis/core';
import { z } from 'zod';
import { OrderId } from './common.ts';

export const orderPlaced = event('market.order_placed', z.object({ orderId: OrderId, exchangeOrderId: z.string() }));
