import { z } from 'zod';

/** Account ids are strings of digits on the wire, e.g. "101" (specs/simplebank.md). */
export const AccountId = z.string().regex(/^\d{1,12}$/, 'an account id is digits, e.g. "101"');
export const StockSymbol = z.string().regex(/^[A-Z]{1,5}$/, 'a symbol is 1 to 5 capital letters, e.g. "BHP"');
export const OrderId = z.string().uuid();
/** Money on the wire: a decimal string with two places, e.g. "91.72" (minor units in storage). */
export const Money = z
  .string()
  .regex(/^-?\d{1,15}\.\d{2}$/, 'an amount is a decimal string with two places, e.g. "91.72"');
export const Quantity = z.number().int().positive().max(1_000_000_000);
export const OrderStatus = z.enum(['created', 'placed', 'completed', 'rejected', 'failed', 'canceled']);
export const Side = z.enum(['sell', 'buy']);

/** "91.72" → 9172. Amounts on the wire are decimal strings; in storage and arithmetic, integer cents. */
export function toCents(amount: string): number {
  const negative = amount.startsWith('-');
  const [units = '0', fraction = '0'] = amount.replace('-', '').split('.');
  const cents = Number(units) * 100 + Number(fraction.padEnd(2, '0').slice(0, 2));
  return negative ? -cents : cents;
}

/** 1234567 → "12345.67". */
export function money(cents: number): string {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(Math.round(cents));
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

/** The fee of an order (specs/simplebank.md): 0.1% of its notional, at least 1.00, in cents. */
export function feeFor(notionalCents: number): number {
  return Math.max(100, Math.ceil(notionalCents / 1000));
}

/** What every order event says of its order. */
export const OrderRef = z.object({
  orderId: OrderId,
  accountId: AccountId,
  side: Side,
  symbol: StockSymbol,
  quantity: Quantity,
});
