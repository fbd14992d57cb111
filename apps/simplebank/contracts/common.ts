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
