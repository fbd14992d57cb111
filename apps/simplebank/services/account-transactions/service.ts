import { ChassisError, defineService, handle, on, requireIdentity, requireRole } from '@chassis/core';
import { database, sql } from '@chassis/data';
import type { Generated, Kysely } from 'kysely';
import type { z } from 'zod';
import {
  chargeFee,
  creditPayment,
  getPositions,
  InsufficientCash,
  InsufficientShares,
  listAccounts,
  listTransactions,
  OrderEnded,
  refundFee,
  requestReservation,
} from '../../contracts/account-transactions.ts';
import { money, type OrderRef, toCents } from '../../contracts/common.ts';
import { tradeExecuted } from '../../contracts/market.ts';
import { orderCanceled, orderFailed } from '../../contracts/orders.ts';
import { requireAccount } from '../shared/access.ts';

interface LedgerTables {
  accounts: { id: string; name: string; owner: string; cash_cents: number; cash_reserved_cents: number };
  positions: { account_id: string; symbol: string; quantity: number; reserved: number };
  reservations: {
    order_id: string;
    account_id: string;
    side: 'sell' | 'buy';
    symbol: string;
    quantity: number;
    cash_cents: number;
    status: 'held' | 'released' | 'consumed';
  };
  fee_voids: { order_id: string };
  entries: {
    id: Generated<number>;
    order_id: string | null;
    account: string;
    asset: string;
    amount: number;
    kind: 'opening' | 'trade' | 'fee' | 'fee_refund' | 'payment';
    at: Generated<Date>;
  };
}

type Ledger = Kysely<LedgerTables>;
type Entry = Pick<LedgerTables['entries'], 'order_id' | 'account' | 'asset' | 'amount' | 'kind'>;

/** The bank's own books, the other side of every entry (see migration 003). */
export const Books = { exchange: 'exchange', fees: 'fees', payments: 'payments', opening: 'opening' } as const;

/**
 * The ledger (its own schema, `account-transactions`): accounts with their cash, positions, the
 * reservations that keep shares and cash from being spent twice, and the double-entry entries every
 * movement writes. A reservation locks its account's row (and its position's), so concurrent orders
 * on one account queue there and nothing free goes below zero. Settlement and release run on the
 * order's events, once each (the inbox, and the reservation's status under its row lock).
 */
export function accountTransactionsService() {
  return defineService({
    name: 'account-transactions',
    version: '0.3.0',
    migrations: new URL('./migrations/', import.meta.url),
    actions: [
      handle(requestReservation, async (input, ctx) => {
        // The customer's token came along from the orders service: this ledger checks it too.
        requireAccount(ctx.user, input.accountId);
        const db = await database<LedgerTables>(ctx);
        const cash = toCents(input.cash);
        const account = await lockAccount(db, input.accountId);
        const existing = await db
          .selectFrom('reservations')
          .select('status')
          .where('order_id', '=', input.orderId)
          .executeTakeFirst();
        if (existing?.status === 'released') {
          throw OrderEnded(`Order ${input.orderId} failed or was canceled before its reservation came`, {
            orderId: input.orderId,
          });
        }
        const position =
          input.side === 'sell'
            ? await db
                .selectFrom('positions')
                .select(['quantity', 'reserved'])
                .where('account_id', '=', input.accountId)
                .where('symbol', '=', input.symbol)
                .forUpdate()
                .executeTakeFirst()
            : undefined;
        const freeShares = position ? Number(position.quantity) - Number(position.reserved) : 0;
        // Asked again for the same order (a retry): it already holds what it needs.
        if (existing) return { reservationId: `res-${input.orderId}`, free: freeShares };
        if (input.side === 'sell' && freeShares < input.quantity) {
          throw InsufficientShares(
            `Account ${input.accountId} has ${freeShares} ${input.symbol} free; ${input.quantity} requested`,
            { accountId: input.accountId, symbol: input.symbol, free: freeShares, requested: input.quantity },
          );
        }
        const freeCash = Number(account.cash_cents) - Number(account.cash_reserved_cents);
        if (freeCash < cash) {
          throw InsufficientCash(
            `Account ${input.accountId} has ${money(freeCash)} free; this order needs ${input.cash}${input.side === 'sell' ? ' for its fee' : ''}`,
            { accountId: input.accountId, free: money(freeCash), requested: input.cash },
          );
        }
        await db
          .insertInto('reservations')
          .values({
            order_id: input.orderId,
            account_id: input.accountId,
            side: input.side,
            symbol: input.symbol,
            quantity: input.side === 'sell' ? input.quantity : 0,
            cash_cents: cash,
            status: 'held',
          })
          .execute();
        if (cash > 0) await reserveCash(db, input.accountId, cash);
        if (input.side === 'sell') {
          await db
            .updateTable('positions')
            .set({ reserved: sql`reserved + ${input.quantity}` })
            .where('account_id', '=', input.accountId)
            .where('symbol', '=', input.symbol)
            .execute();
        }
        const free = input.side === 'sell' ? freeShares - input.quantity : freeShares;
        return { reservationId: `res-${input.orderId}`, free };
      }),
      handle(chargeFee, async (input, ctx) => {
        // Fees are the bank's own business: only its services (the fees service) charge them, never a customer.
        requireRole(ctx.user, 'system');
        const db = await database<LedgerTables>(ctx);
        const fee = toCents(input.fee);
        const account = await lockAccount(db, input.accountId);
        if (await hasEntry(db, input.orderId, 'fee')) return { charged: true };
        const reservation = await lockReservation(db, input.orderId);
        // The order ended before its fee came: a released order is charged nothing.
        if (reservation?.status === 'released' || (await isVoided(db, input.orderId))) return { charged: false };
        // From the cash the order reserved for its fee; if the order is over already, from free cash.
        const fromReservation = reservation?.status === 'held' ? Math.min(fee, Number(reservation.cash_cents)) : 0;
        const freeCash = Number(account.cash_cents) - Number(account.cash_reserved_cents);
        if (freeCash < fee - fromReservation) {
          // A refusal is final, as a charge is: the fees service records the fee waived, and a placement
          // delivered again once cash is free must not take it then, unrecorded.
          await voidFee(db, input.orderId);
          return { charged: false };
        }
        if (fromReservation > 0) {
          await db
            .updateTable('reservations')
            .set({ cash_cents: sql`cash_cents - ${fromReservation}` })
            .where('order_id', '=', input.orderId)
            .execute();
          await reserveCash(db, input.accountId, -fromReservation);
        }
        await post(db, [
          { order_id: input.orderId, account: input.accountId, asset: 'CASH', amount: -fee, kind: 'fee' },
          { order_id: input.orderId, account: Books.fees, asset: 'CASH', amount: fee, kind: 'fee' },
        ]);
        return { charged: true };
      }),
      handle(refundFee, async (input, ctx) => {
        requireRole(ctx.user, 'system');
        const db = await database<LedgerTables>(ctx);
        await lockAccount(db, input.accountId);
        const charge = await db
          .selectFrom('entries')
          .select('amount')
          .where('order_id', '=', input.orderId)
          .where('account', '=', Books.fees)
          .where('kind', '=', 'fee')
          .executeTakeFirst();
        if (!charge) {
          // Nothing charged yet: a charge arriving later is refused.
          await voidFee(db, input.orderId);
          return { refunded: false, fee: '0.00' };
        }
        const fee = Number(charge.amount);
        if (await hasEntry(db, input.orderId, 'fee_refund')) return { refunded: true, fee: money(fee) };
        await post(db, [
          { order_id: input.orderId, account: input.accountId, asset: 'CASH', amount: fee, kind: 'fee_refund' },
          { order_id: input.orderId, account: Books.fees, asset: 'CASH', amount: -fee, kind: 'fee_refund' },
        ]);
        return { refunded: true, fee: money(fee) };
      }),
      handle(creditPayment, async (input, ctx) => {
        requireAccount(ctx.user, input.accountId);
        const db = await database<LedgerTables>(ctx);
        const account = await lockAccount(db, input.accountId);
        // The payment's id is the entries' order id: a payment is credited once, however often asked.
        if (await hasEntry(db, input.paymentId, 'payment'))
          return { credited: false, cash: money(Number(account.cash_cents)) };
        const amount = toCents(input.amount);
        await post(db, [
          { order_id: input.paymentId, account: input.accountId, asset: 'CASH', amount, kind: 'payment' },
          { order_id: input.paymentId, account: Books.payments, asset: 'CASH', amount: -amount, kind: 'payment' },
        ]);
        return { credited: true, cash: money(Number(account.cash_cents) + amount) };
      }),
      handle(listAccounts, async (_input, ctx) => {
        const user = requireIdentity(ctx.user);
        const db = await database<LedgerTables>(ctx);
        let query = db.selectFrom('accounts').select(['id', 'name', 'cash_cents']).orderBy('id');
        if (!user.roles.includes('admin')) query = query.where('owner', '=', user.subject);
        const rows = await query.execute();
        return rows.map((row) => ({ id: row.id, name: row.name, cash: money(Number(row.cash_cents)) }));
      }),
      handle(getPositions, async ({ accountId }, ctx) => {
        requireAccount(ctx.user, accountId);
        const db = await database<LedgerTables>(ctx);
        const account = await findAccount(db, accountId);
        const positions = await db
          .selectFrom('positions')
          .select(['symbol', 'quantity', 'reserved'])
          .where('account_id', '=', accountId)
          .where('quantity', '>', 0)
          .orderBy('symbol')
          .execute();
        return {
          accountId,
          cash: money(Number(account.cash_cents)),
          reservedCash: money(Number(account.cash_reserved_cents)),
          positions: positions.map((p) => ({
            symbol: p.symbol,
            quantity: Number(p.quantity),
            reserved: Number(p.reserved),
          })),
        };
      }),
      handle(listTransactions, async ({ accountId, page, size }, ctx) => {
        requireAccount(ctx.user, accountId);
        const db = await database<LedgerTables>(ctx);
        await findAccount(db, accountId);
        const rows = await db
          .selectFrom('entries')
          .selectAll()
          .where('account', '=', accountId)
          .orderBy('id', 'desc')
          .limit(size)
          .offset((page - 1) * size)
          .execute();
        const entries = rows.map((row) => ({
          id: Number(row.id),
          orderId: row.order_id,
          kind: row.kind,
          asset: row.asset,
          amount: row.asset === 'CASH' ? money(Number(row.amount)) : String(row.amount),
          at: new Date(row.at).toISOString(),
        }));
        return { accountId, page, size, entries };
      }),
    ],
    events: [
      on(tradeExecuted, async (trade, ctx) => settle(await database<LedgerTables>(ctx), trade)),
      on(orderFailed, async (order, ctx) => release(await database<LedgerTables>(ctx), order), {
        name: 'release-failed',
      }),
      on(orderCanceled, async (order, ctx) => release(await database<LedgerTables>(ctx), order), {
        name: 'release-canceled',
      }),
    ],
  });
}

async function findAccount(db: Ledger, accountId: string) {
  const account = await db
    .selectFrom('accounts')
    .select(['cash_cents', 'cash_reserved_cents'])
    .where('id', '=', accountId)
    .executeTakeFirst();
  if (!account) throw notFound(accountId);
  return account;
}

/** Every change to an account takes its row first, in one order, so two orders never deadlock. */
async function lockAccount(db: Ledger, accountId: string) {
  const account = await lockAccountIfAny(db, accountId);
  if (!account) throw notFound(accountId);
  return account;
}

function lockAccountIfAny(db: Ledger, accountId: string) {
  return db
    .selectFrom('accounts')
    .select(['cash_cents', 'cash_reserved_cents'])
    .where('id', '=', accountId)
    .forUpdate()
    .executeTakeFirst();
}

function notFound(accountId: string): ChassisError {
  return new ChassisError('NOT_FOUND', `No account ${accountId}`, { data: { accountId } });
}

function lockReservation(db: Ledger, orderId: string) {
  return db.selectFrom('reservations').selectAll().where('order_id', '=', orderId).forUpdate().executeTakeFirst();
}

async function hasEntry(db: Ledger, orderId: string, kind: Entry['kind']): Promise<boolean> {
  const row = await db
    .selectFrom('entries')
    .select('id')
    .where('order_id', '=', orderId)
    .where('kind', '=', kind)
    .executeTakeFirst();
  return row !== undefined;
}

async function isVoided(db: Ledger, orderId: string): Promise<boolean> {
  const row = await db.selectFrom('fee_voids').select('order_id').where('order_id', '=', orderId).executeTakeFirst();
  return row !== undefined;
}

/** The order's fee is never to be charged: refused once, or refunded before it came. */
async function voidFee(db: Ledger, orderId: string): Promise<void> {
  await db
    .insertInto('fee_voids')
    .values({ order_id: orderId })
    .onConflict((oc) => oc.doNothing())
    .execute();
}

function reserveCash(db: Ledger, accountId: string, cents: number) {
  return db
    .updateTable('accounts')
    .set({ cash_reserved_cents: sql`cash_reserved_cents + ${cents}` })
    .where('id', '=', accountId)
    .execute();
}

/** Writes balanced entries and moves the customer accounts' balances with them. */
async function post(db: Ledger, entries: Entry[]): Promise<void> {
  const sums = new Map<string, number>();
  for (const entry of entries) sums.set(entry.asset, (sums.get(entry.asset) ?? 0) + entry.amount);
  for (const [asset, sum] of sums) {
    if (sum !== 0) throw new Error(`Unbalanced ${asset} entries: they sum to ${sum}`);
  }
  await db.insertInto('entries').values(entries).execute();
  for (const entry of entries) {
    if (Object.values<string>(Books).includes(entry.account)) continue;
    if (entry.asset === 'CASH') {
      await db
        .updateTable('accounts')
        .set({ cash_cents: sql`cash_cents + ${entry.amount}` })
        .where('id', '=', entry.account)
        .execute();
    } else if (entry.amount < 0) {
      await db
        .updateTable('positions')
        .set({ quantity: sql`quantity + ${entry.amount}` })
        .where('account_id', '=', entry.account)
        .where('symbol', '=', entry.asset)
        .execute();
    } else {
      // A row's checks run before ON CONFLICT: only a positive amount may try to insert one.
      await db
        .insertInto('positions')
        .values({ account_id: entry.account, symbol: entry.asset, quantity: entry.amount, reserved: 0 })
        .onConflict((oc) =>
          oc.columns(['account_id', 'symbol']).doUpdateSet({ quantity: sql`positions.quantity + ${entry.amount}` }),
        )
        .execute();
    }
  }
}

/**
 * The exchange filled the order: shares and cash change hands with the exchange, the reservation is
 * consumed and what it held beyond the trade goes back to free. Once per order.
 */
async function settle(
  db: Ledger,
  trade: { orderId: string; accountId: string; side: 'sell' | 'buy'; symbol: string; quantity: number; price: string },
): Promise<void> {
  await lockAccount(db, trade.accountId);
  const reservation = await lockReservation(db, trade.orderId);
  if (!reservation || reservation.status === 'consumed') return;
  const cost = trade.quantity * toCents(trade.price);
  const shares = trade.side === 'sell' ? -trade.quantity : trade.quantity;
  const cash = trade.side === 'sell' ? cost : -cost;
  if (reservation.status === 'held') {
    if (trade.side === 'sell') {
      await db
        .updateTable('positions')
        .set({ reserved: sql`reserved - ${Number(reservation.quantity)}` })
        .where('account_id', '=', trade.accountId)
        .where('symbol', '=', trade.symbol)
        .execute();
    }
    await reserveCash(db, trade.accountId, -Number(reservation.cash_cents));
  }
  await db.updateTable('reservations').set({ status: 'consumed' }).where('order_id', '=', trade.orderId).execute();
  await post(db, [
    { order_id: trade.orderId, account: trade.accountId, asset: trade.symbol, amount: shares, kind: 'trade' },
    { order_id: trade.orderId, account: Books.exchange, asset: trade.symbol, amount: -shares, kind: 'trade' },
    { order_id: trade.orderId, account: trade.accountId, asset: 'CASH', amount: cash, kind: 'trade' },
    { order_id: trade.orderId, account: Books.exchange, asset: 'CASH', amount: -cash, kind: 'trade' },
  ]);
}

/**
 * The order failed or was canceled: what it reserved is free again. Once per order. An order that ended
 * before its reservation came (the request slow or retried, the order failed meanwhile) is marked
 * released all the same, holding nothing, so that the reservation is refused when it comes: under the
 * account's lock, which the reservation takes first too, one of the two always sees the other.
 */
async function release(db: Ledger, order: z.infer<typeof OrderRef>): Promise<void> {
  // No such account: the ledger refused the order, so it never reserved anything.
  if (!(await lockAccountIfAny(db, order.accountId))) return;
  const held = await lockReservation(db, order.orderId);
  if (!held) {
    await db
      .insertInto('reservations')
      .values({
        order_id: order.orderId,
        account_id: order.accountId,
        side: order.side,
        symbol: order.symbol,
        quantity: 0,
        cash_cents: 0,
        status: 'released',
      })
      .execute();
    return;
  }
  if (held.status !== 'held') return;
  await reserveCash(db, held.account_id, -Number(held.cash_cents));
  if (Number(held.quantity) > 0) {
    await db
      .updateTable('positions')
      .set({ reserved: sql`reserved - ${Number(held.quantity)}` })
      .where('account_id', '=', held.account_id)
      .where('symbol', '=', held.symbol)
      .execute();
  }
  await db.updateTable('reservations').set({ status: 'released' }).where('order_id', '=', order.orderId).execute();
}
