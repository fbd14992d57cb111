import { z } from 'zod';

export const UserId = z.string().uuid();
export const ProductId = z.string().uuid();
export const OrderId = z.string().uuid();

/** Whole cents: a price of 19.99 has no more than two decimals. */
function hasAtMostTwoDecimals(value: number): boolean {
  return Math.abs(value * 100 - Math.round(value * 100)) < 1e-6;
}

/**
 * Money on the wire is a JSON number with at most two decimals, as the book's examples send it
 * (`"price": 19.99`); in storage and arithmetic it is integer cents, never a float.
 */
export const Price = z
  .number()
  .positive()
  .max(1_000_000)
  .refine(hasAtMostTwoDecimals, { message: 'a price has at most two decimals, e.g. 19.99' });

/** What an amount is on the wire: a number of currency units with two decimals at most. */
export const Amount = z.number().nonnegative();

/** 19.99 → 1999. */
export function toCents(amount: number): number {
  return Math.round(amount * 100);
}

/** 1999 → 19.99. */
export function fromCents(cents: number): number {
  return Math.round(cents) / 100;
}

/** Over this an order is held for review instead of charged (specs/shop.md: the fraud rule). */
export const FRAUD_REVIEW_OVER_CENTS = 1_000_000;
