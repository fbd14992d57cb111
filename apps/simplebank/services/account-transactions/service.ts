import { defineService, handle, requireIdentity } from '@chassis/core';
import { database, sql } from '@chassis/data';
import { InsufficientShares, listAccounts, requestReservation } from '../../contracts/account-transactions.ts';
import { requireAccount } from '../shared/access.ts';

interface LedgerTables {
  accounts: { id: string; name: string; owner: string; cash_cents: number };
  positions: { account_id: string; symbol: string; quantity: number; reserved: number };
  reservations: { order_id: string; account_id: string; symbol: string; quantity: number; status: string };
}

/** 1234567 cents → "12345.67". */
function money(cents: number): string {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

/**
 * The ledger (its own schema, `account-transactions`): accounts, positions and the reservations that
 * keep shares from being sold twice. A reservation locks its position's row, so concurrent orders on
 * one account queue there and the free quantity never goes below zero. Settlement, cash reservations
 * and the double-entry entries come with the rest of the flagship (issue 6).
 */
export function accountTransactionsService() {
  return defineService({
    name: 'account-transactions',
    version: '0.2.0',
    migrations: new URL('./migrations/', import.meta.url),
    actions: [
      handle(requestReservation, async (input, ctx) => {
        // The customer's token came along from the orders service: this ledger checks it too.
        requireAccount(ctx.user, input.accountId);
        const db = await database<LedgerTables>(ctx);
        const position = await db
          .selectFrom('positions')
          .select(['quantity', 'reserved'])
          .where('account_id', '=', input.accountId)
          .where('symbol', '=', input.symbol)
          .forUpdate()
          .executeTakeFirst();
        const free = position ? Number(position.quantity) - Number(position.reserved) : 0;
        const existing = await db
          .selectFrom('reservations')
          .select('order_id')
          .where('order_id', '=', input.orderId)
          .executeTakeFirst();
        // Asked again for the same order (a retry): it already holds its shares.
        if (existing) return { reservationId: `res-${input.orderId}`, free };
        if (!position || free < input.quantity) {
          throw InsufficientShares(
            `Account ${input.accountId} has ${free} ${input.symbol} free; ${input.quantity} requested`,
            { accountId: input.accountId, symbol: input.symbol, free, requested: input.quantity },
          );
        }
        await db
          .insertInto('reservations')
          .values({
            order_id: input.orderId,
            account_id: input.accountId,
            symbol: input.symbol,
            quantity: input.quantity,
            status: 'held',
          })
          .execute();
        await db
          .updateTable('positions')
          .set({ reserved: sql`reserved + ${input.quantity}` })
          .where('account_id', '=', input.accountId)
          .where('symbol', '=', input.symbol)
          .execute();
        return { reservationId: `res-${input.orderId}`, free: free - input.quantity };
      }),
      handle(listAccounts, async (_input, ctx) => {
        const user = requireIdentity(ctx.user);
        const db = await database<LedgerTables>(ctx);
        let query = db.selectFrom('accounts').select(['id', 'name', 'cash_cents']).orderBy('id');
        if (!user.roles.includes('admin')) query = query.where('owner', '=', user.subject);
        const rows = await query.execute();
        return rows.map((row) => ({ id: row.id, name: row.name, cash: money(Number(row.cash_cents)) }));
      }),
    ],
  });
}
