import { defineService, on } from '@chassis/core';
import { orderPlaced } from '../../contracts/market.ts';
import { orderCreated } from '../../contracts/orders.ts';

/**
 * The gateway to the stock exchange. In this slice it acknowledges each order with an exchange id;
 * the HTTP exchange simulator, its breaker and fills come with the flagship (issue 6).
 */
export function marketService() {
  let sequence = 0;
  return defineService({
    name: 'market',
    version: '0.1.0',
    uses: [orderPlaced],
    events: [
      on(orderCreated, async (order, ctx) => {
        const exchangeOrderId = `X-${++sequence}`;
        ctx.log.info({ orderId: order.orderId, exchangeOrderId }, 'order placed on the exchange');
        await ctx.emit(orderPlaced, { orderId: order.orderId, exchangeOrderId });
      }),
    ],
  });
}
