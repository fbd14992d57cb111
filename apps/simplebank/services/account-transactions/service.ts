import { defineService, handle } from '@chassis/core';
import { InsufficientShares, requestReservation } from '../../contracts/account-transactions.ts';

/**
 * The ledger's reservation step. For now positions live in memory, seeded
 * as in specs/simplebank.md; the full double-entry ledger comes with the flagship (issue 6).
 */
export function accountTransactionsService() {
  const positions = new Map<string, number>([
    ['101:BHP', 1000],
    ['101:GOOG', 103],
    ['101:ABC', 24],
    ['102:BHP', 50],
  ]);
  const reserved = new Map<string, number>();
  const reservations = new Map<string, { key: string; quantity: number }>();

  const free = (key: string) => (positions.get(key) ?? 0) - (reserved.get(key) ?? 0);

  return defineService({
    name: 'account-transactions',
    version: '0.1.0',
    actions: [
      handle(requestReservation, (input) => {
        const key = `${input.accountId}:${input.symbol}`;
        const existing = reservations.get(input.orderId);
        if (existing) return { reservationId: `res-${input.orderId}`, free: free(existing.key) };
        const available = free(key);
        if (available < input.quantity) {
          throw InsufficientShares(
            `Account ${input.accountId} has ${available} ${input.symbol} free; ${input.quantity} requested`,
            { accountId: input.accountId, symbol: input.symbol, free: available, requested: input.quantity },
          );
        }
        reserved.set(key, (reserved.get(key) ?? 0) + input.quantity);
        reservations.set(input.orderId, { key, quantity: input.quantity });
        return { reservationId: `res-${input.orderId}`, free: available - input.quantity };
      }),
    ],
  });
}
