import { ChassisError, defineService, handle, on, requireIdentity, requireRole } from '@chassis/core';
import { database, executeLast, sql } from '@chassis/data';
import type { Generated, Kysely, RawBuilder } from 'kysely';
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
import { feeFor, money, type OrderRef, toCents } from '../../contracts/common.ts';
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
        // Under the account's lock, which every writer of its reservations and positions takes first: the
        // order's reservation, if any, and (a sell) the position, one statement.
        const { existing, position } = await reservationAndPosition(db, input);
        if (existing?.status === 'released') {
          throw OrderEnded(`Order ${input.orderId} failed or was canceled before its reservation came`, {
            orderId: input.orderId,
          });
        }
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
        const quantity = input.side === 'sell' ? input.quantity : 0;
        await write(db, {
          accountId: input.accountId,
          reservation: sql`insert into ${table('reservations')} (order_id, account_id, side, symbol, quantity, cash_cents, status)
            values (${input.orderId}, ${input.accountId}, ${input.side}, ${input.symbol}, ${quantity}, ${cash}, 'held')`,
          reservedCash: cash,
          reservedShares: quantity > 0 ? { symbol: input.symbol, quantity } : undefined,
        });
        const free = input.side === 'sell' ? freeShares - input.quantity : freeShares;
        return { reservationId: `res-${input.orderId}`, free };
      }),
      handle(chargeFee, async (input, ctx) => {
        // Fees are the bank's own business: only its services (the fees service) charge them, never a customer.
        requireRole(ctx.user, 'system');
        const db = await database<LedgerTables>(ctx);
        const fee = toCents(input.fee);
        const account = await lockAccount(db, input.accountId);
        const { reservation, charged, voided } = await feeState(db, input.orderId);
        if (charged) return { charged: true };
        // The order ended before its fee came: a released order is charged nothing.
        if (reservation?.status === 'released' || voided) return { charged: false };
        // From the cash the order reserved for its fee; if the order is over already, from free cash.
        const fromReservation = reservation?.status === 'held' ? Math.min(fee, Number(reservation.cash_cents)) : 0;
        const freeCash = Number(account.cash_cents) - Number(account.cash_reserved_cents);
        if (freeCash < fee - fromReservation) {
          // A refusal is final, as a charge is: the fees service records the fee waived, and a placement
          // delivered again once cash is free must not take it then, unrecorded.
          await voidFee(db, input.orderId);
          return { charged: false };
        }
        await write(db, {
          accountId: input.accountId,
          entries: [
            { order_id: input.orderId, account: input.accountId, asset: 'CASH', amount: -fee, kind: 'fee' },
            { order_id: input.orderId, account: Books.fees, asset: 'CASH', amount: fee, kind: 'fee' },
          ],
          reservation:
            fromReservation > 0
              ? sql`update ${table('reservations')} set cash_cents = cash_cents - ${fromReservation}
                  where order_id = ${input.orderId}`
              : undefined,
          reservedCash: -fromReservation,
        });
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
          // The kind as a literal, not a parameter: only so does a generic plan know it may use the partial
          // index entries_fee_once (kinds fee and fee_refund); entries has no other index by order.
          .where('kind', '=', sql.lit('fee'))
          .executeTakeFirst();
        if (!charge) {
          // Nothing charged yet: a charge arriving later is refused.
          await voidFee(db, input.orderId);
          return { refunded: false, fee: '0.00' };
        }
        const fee = Number(charge.amount);
        if (await hasEntry(db, input.orderId, 'fee_refund')) return { refunded: true, fee: money(fee) };
        await write(db, {
          accountId: input.accountId,
          entries: [
            { order_id: input.orderId, account: input.accountId, asset: 'CASH', amount: fee, kind: 'fee_refund' },
            { order_id: input.orderId, account: Books.fees, asset: 'CASH', amount: -fee, kind: 'fee_refund' },
          ],
        });
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
        await write(db, {
          accountId: input.accountId,
          entries: [
            { order_id: input.paymentId, account: input.accountId, asset: 'CASH', amount, kind: 'payment' },
            { order_id: input.paymentId, account: Books.payments, asset: 'CASH', amount: -amount, kind: 'payment' },
          ],
        });
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
      // Once per order by the reservation's status, under the account's lock: no inbox row needed.
      on(tradeExecuted, async (trade, ctx) => settle(await database<LedgerTables>(ctx), trade), { idempotent: true }),
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

/** Written as text, not built: it runs before every change, and Kysely's builder cost more than the statement. */
async function lockAccountIfAny(db: Ledger, accountId: string) {
  const { rows } = await sql<Pick<LedgerTables['accounts'], 'cash_cents' | 'cash_reserved_cents'>>`
    select cash_cents, cash_reserved_cents from ${table('accounts')} where id = ${accountId} for update`.execute(db);
  return rows[0];
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
    // A literal (see refundFee): a parameter would keep a generic plan off entries_fee_once, so every call
    // was planned anew, and a payment's (no partial index) reads entries whole either way.
    .where('kind', '=', sql.lit(kind))
    .executeTakeFirst();
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

/** The ledger's own tables in raw statements (the service's schema is its name). */
function table(name: keyof LedgerTables) {
  return sql.id('account-transactions', name);
}

/** The order's reservation and, for a sell, the position it reserves from (locked): one statement. */
async function reservationAndPosition(
  db: Ledger,
  input: { orderId: string; accountId: string; side: 'sell' | 'buy'; symbol: string },
) {
  const position =
    input.side === 'sell'
      ? sql`(select quantity, reserved from ${table('positions')}
          where account_id = ${input.accountId} and symbol = ${input.symbol} for update)`
      : sql`(select null::bigint as quantity, null::bigint as reserved where false)`;
  const { rows } = await sql<{
    status: LedgerTables['reservations']['status'] | null;
    quantity: number | string | null;
    reserved: number | string | null;
  }>`
    select r.status, p.quantity, p.reserved
    from (values (1)) as one
    left join lateral (select status from ${table('reservations')} where order_id = ${input.orderId}) as r on true
    left join lateral ${position} as p on true`.execute(db);
  const row = rows[0]!;
  return {
    existing: row.status === null ? undefined : { status: row.status },
    position: row.quantity === null ? undefined : { quantity: row.quantity, reserved: row.reserved ?? 0 },
  };
}

/**
 * What a fee charge decides on, read in one statement under the account's lock: the order's reservation
 * (locked), whether its fee was charged already and whether it was voided.
 */
async function feeState(db: Ledger, orderId: string) {
  const { rows } = await sql<{
    status: LedgerTables['reservations']['status'] | null;
    cash_cents: number | string | null;
    charged: boolean;
    voided: boolean;
  }>`
    select r.status, r.cash_cents,
      exists (select 1 from ${table('entries')} where order_id = ${orderId} and kind = 'fee') as charged,
      exists (select 1 from ${table('fee_voids')} where order_id = ${orderId}) as voided
    from (values (1)) as one
    left join lateral (
      select status, cash_cents from ${table('reservations')} where order_id = ${orderId} for update
    ) as r on true`.execute(db);
  const row = rows[0]!;
  return {
    reservation: row.status === null ? undefined : { status: row.status, cash_cents: row.cash_cents ?? 0 },
    charged: row.charged,
    voided: row.voided,
  };
}

/** A change of one customer account's books, written by `write` in one statement. */
interface Change {
  /** The customer account whose rows change (its row is locked by the caller). */
  accountId: string;
  /** Balanced entries, between this account and the bank's books. */
  entries?: Entry[];
  /** The write to the order's reservation, if any: an insert or an update of `reservations`. */
  reservation?: RawBuilder<unknown>;
  /** Cash reserved (+) or released (−), in cents. */
  reservedCash?: number;
  /** Shares reserved (+) or released (−). */
  reservedShares?: { symbol: string; quantity: number } | undefined;
}

/**
 * Writes balanced entries and moves the account's balances, positions and reservation with them, in one
 * statement (data-modifying CTEs; each row is changed by one of them only, as PostgreSQL requires) that
 * ends the handler's transaction: nothing may be written after it.
 */
async function write(_db: Ledger, change: Change): Promise<void> {
  const entries = change.entries ?? [];
  const sums = new Map<string, number>();
  for (const entry of entries) sums.set(entry.asset, (sums.get(entry.asset) ?? 0) + entry.amount);
  for (const [asset, sum] of sums) {
    if (sum !== 0) throw new Error(`Unbalanced ${asset} entries: they sum to ${sum}`);
  }
  let cash = 0;
  const shares = new Map<string, { quantity: number; reserved: number }>();
  for (const entry of entries) {
    if (Object.values<string>(Books).includes(entry.account)) continue;
    if (entry.account !== change.accountId)
      throw new Error(`An entry of account ${entry.account} in a change of ${change.accountId}`);
    if (entry.asset === 'CASH') cash += entry.amount;
    else {
      const position = shares.get(entry.asset) ?? { quantity: 0, reserved: 0 };
      position.quantity += entry.amount;
      shares.set(entry.asset, position);
    }
  }
  if (change.reservedShares) {
    const position = shares.get(change.reservedShares.symbol) ?? { quantity: 0, reserved: 0 };
    position.reserved += change.reservedShares.quantity;
    shares.set(change.reservedShares.symbol, position);
  }
  const parts: RawBuilder<unknown>[] = [];
  if (entries.length > 0) {
    const values = entries.map(
      (e) => sql`(${e.order_id}::uuid, ${e.account}, ${e.asset}, ${e.amount}::bigint, ${e.kind})`,
    );
    parts.push(
      sql`insert into ${table('entries')} (order_id, account, asset, amount, kind) values ${sql.join(values)}`,
    );
  }
  if (change.reservation) parts.push(change.reservation);
  for (const [symbol, { quantity, reserved }] of shares) {
    if (quantity === 0 && reserved === 0) continue;
    // A row's checks run before ON CONFLICT: only a positive quantity may try to insert one.
    parts.push(
      quantity > 0
        ? sql`insert into ${table('positions')} (account_id, symbol, quantity, reserved)
            values (${change.accountId}, ${symbol}, ${quantity}::bigint, ${reserved}::bigint)
            on conflict (account_id, symbol) do update
            set quantity = positions.quantity + ${quantity}::bigint, reserved = positions.reserved + ${reserved}::bigint`
        : sql`update ${table('positions')}
            set quantity = quantity + ${quantity}::bigint, reserved = reserved + ${reserved}::bigint
            where account_id = ${change.accountId} and symbol = ${symbol}`,
    );
  }
  const reservedCash = change.reservedCash ?? 0;
  if (cash !== 0 || reservedCash !== 0) {
    parts.push(sql`update ${table('accounts')}
      set cash_cents = cash_cents + ${cash}::bigint, cash_reserved_cents = cash_reserved_cents + ${reservedCash}::bigint
      where id = ${change.accountId}`);
  }
  const last = parts.pop();
  if (!last) return;
  const ctes = parts.map((part, i) => sql`${sql.raw(`w${i}`)} as (${part})`);
  // Every handler's last statement (none emits): its COMMIT goes with it, a round trip fewer.
  await executeLast(ctes.length > 0 ? sql`with ${sql.join(ctes)} ${last}` : last);
}

/**
 * The exchange filled the order: shares and cash change hands with the exchange, the order's fee is
 * taken, the reservation is consumed and what it held beyond the trade and the fee goes back to free.
 * Once per order. The fee is charged here, not on placement: the trade fixes the notional it is 0.1% of,
 * and taking it in the settlement's statement spares every order a call and two transactions (the fees
 * service's charge and its record). What the order held covers it: a sell held the fee of its proceeds
 * at a 5% rise (and the proceeds are at least the fee above the 1.00 minimum), a buy its cost and fee at
 * the limit it fills within. A fee charged before (on placement, by an earlier version) or voided (the
 * order was refunded before) is not taken again.
 */
async function settle(
  db: Ledger,
  trade: { orderId: string; accountId: string; side: 'sell' | 'buy'; symbol: string; quantity: number; price: string },
): Promise<void> {
  // The account's lock first, then what was written under it: a statement's reads see what had committed
  // when it began, so reads made in the statement that waited for the lock could miss the last holder's.
  const account = await lockAccount(db, trade.accountId);
  const { reservation, charged, voided } = await settlementState(db, trade.orderId);
  if (!reservation || reservation.status === 'consumed') return;
  const cost = trade.quantity * toCents(trade.price);
  const shares = trade.side === 'sell' ? -trade.quantity : trade.quantity;
  const cash = trade.side === 'sell' ? cost : -cost;
  const held = reservation.status === 'held';
  const heldCash = held ? Number(reservation.cash_cents) : 0;
  let fee = charged || voided ? 0 : feeFor(cost);
  // Only an order settled after it was released (the exchange filled it anyway) can find too little: its
  // fee is waived rather than taken from cash the account does not have.
  if (fee > 0 && Number(account.cash_cents) - Number(account.cash_reserved_cents) + heldCash + cash < fee) {
    await voidFee(db, trade.orderId);
    fee = 0;
  }
  const feeEntries: Entry[] =
    fee > 0
      ? [
          { order_id: trade.orderId, account: trade.accountId, asset: 'CASH', amount: -fee, kind: 'fee' },
          { order_id: trade.orderId, account: Books.fees, asset: 'CASH', amount: fee, kind: 'fee' },
        ]
      : [];
  await write(db, {
    accountId: trade.accountId,
    entries: [
      { order_id: trade.orderId, account: trade.accountId, asset: trade.symbol, amount: shares, kind: 'trade' },
      { order_id: trade.orderId, account: Books.exchange, asset: trade.symbol, amount: -shares, kind: 'trade' },
      { order_id: trade.orderId, account: trade.accountId, asset: 'CASH', amount: cash, kind: 'trade' },
      { order_id: trade.orderId, account: Books.exchange, asset: 'CASH', amount: -cash, kind: 'trade' },
      ...feeEntries,
    ],
    reservation: sql`update ${table('reservations')} set status = 'consumed' where order_id = ${trade.orderId}`,
    reservedCash: -heldCash,
    reservedShares:
      held && trade.side === 'sell' ? { symbol: trade.symbol, quantity: -Number(reservation.quantity) } : undefined,
  });
}

/**
 * What a settlement decides on, read in one statement under the account's lock: the order's reservation
 * (locked) and whether the order's fee was charged or voided already.
 */
async function settlementState(db: Ledger, orderId: string) {
  const { rows } = await sql<{
    status: LedgerTables['reservations']['status'] | null;
    quantity: number | string | null;
    cash_cents: number | string | null;
    charged: boolean;
    voided: boolean;
  }>`
    select r.status, r.quantity, r.cash_cents,
      exists (select 1 from ${table('entries')} where order_id = ${orderId} and kind = 'fee') as charged,
      exists (select 1 from ${table('fee_voids')} where order_id = ${orderId}) as voided
    from (values (1)) as one
    left join lateral (
      select status, quantity, cash_cents from ${table('reservations')} where order_id = ${orderId} for update
    ) as r on true`.execute(db);
  const row = rows[0]!;
  return {
    reservation:
      row.status === null
        ? undefined
        : { status: row.status, quantity: row.quantity ?? 0, cash_cents: row.cash_cents ?? 0 },
    charged: row.charged,
    voided: row.voided,
  };
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
  await write(db, {
    accountId: held.account_id,
    reservation: sql`update ${table('reservations')} set status = 'released' where order_id = ${order.orderId}`,
    reservedCash: -Number(held.cash_cents),
    reservedShares: Number(held.quantity) > 0 ? { symbol: held.symbol, quantity: -Number(held.quantity) } : undefined,
  });
}
