import { randomUUID } from 'node:crypto';
import { ChassisError, defineService, handle, on } from '@chassis/core';
import { requestReservation } from '../../contracts/account-transactions.ts';
import { orderPlaced } from '../../contracts/market.ts';
import { getOrder, orderCreated, sellShares } from '../../contracts/orders.ts';
import { requireAccount } from '../shared/access.ts';

type Status = 'created' | 'placed' | 'completed' | 'rejected' | 'failed' | 'canceled';

interface Order {
  id: string;
  accountId: string;
  side: 'sell' | 'buy';
  symbol: string;
  quantity: number;
  status: Status;
  history: { status: Status; at: string }[];
}

/**
 * Accepts sell orders: reserve the shares, record the order, announce it. Orders are kept in memory for
 * now; the flagship (issue 6) makes them event-sourced (one stream per order) on the data kit.
 */
export function ordersService() {
  const orders = new Map<string, Order>();

  const move = (order: Order, status: Status) => {
    order.status = status;
    order.history.push({ status, at: new Date().toISOString() });
  };

  return defineService({
    name: 'orders',
    version: '0.1.0',
    uses: [requestReservation, orderCreated],
    actions: [
      handle(sellShares, async (input, ctx) => {
        requireAccount(ctx.user, input.accountId);
        const order: Order = { id: randomUUID(), ...input, side: 'sell', status: 'created', history: [] };
        move(order, 'created');
        orders.set(order.id, order);
        try {
          await ctx.call(requestReservation, { orderId: order.id, ...input });
        } catch (error) {
          move(order, 'rejected');
          throw error;
        }
        await ctx.emit(orderCreated, { orderId: order.id, ...input, side: 'sell', createdAt: order.history[0]!.at });
        ctx.log.info({ orderId: order.id }, 'sell order created');
        return { orderId: order.id, status: order.status };
      }),
      handle(getOrder, ({ orderId }, ctx) => {
        const order = orders.get(orderId);
        if (!order) throw new ChassisError('NOT_FOUND', `No order ${orderId}`);
        requireAccount(ctx.user, order.accountId);
        return order;
      }),
    ],
    events: [
      on(orderPlaced, ({ orderId }) => {
        const order = orders.get(orderId);
        if (order?.status === 'created') move(order, 'placed');
      }),
    ],
  });
}
