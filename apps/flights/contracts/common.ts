import { z } from 'zod';

/**
 * Values every flights contract shares. Their rules are the ones the OpenAPI documents in `openapi/`
 * state (written first): a change here is a change there.
 */

/** 1 to 4 letters then digits (`AA2532`); read in capitals, as stored. */
export const FlightNo = z
  .string()
  .max(12, 'a flight number has at most 12 characters')
  .regex(/^[A-Za-z]{1,4}\d+$/, 'a flight number is 1 to 4 letters then digits, e.g. AA2532')
  .transform((value) => value.toUpperCase());

/** A calendar date that exists: `2027-05-17`. */
export const FlightDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'a date is YYYY-MM-DD, e.g. 2027-05-17')
  .refine(isCalendarDate, 'no such day in the calendar');

/** Local time at the origin, to the minute: `2027-05-17T13:20`. */
export const DepartureDateTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/, 'a departure is YYYY-MM-DDThh:mm, e.g. 2027-05-17T13:20')
  .refine(
    (value) => isCalendarDate(value.slice(0, 10)) && Number(value.slice(11, 13)) < 24 && Number(value.slice(14)) < 60,
    'no such day or time',
  );

export const AirportCode = z.string().regex(/^[A-Z]{3}$/, 'an airport is its three-letter IATA code, e.g. LAX');
export const FlightId = z.string().uuid('a flight id is a UUID');
export const SeatNum = z.string().regex(/^\d{1,3}[A-Z]$/, 'a seat is its row then its column letter, e.g. 12C');
export const CustomerId = z
  .string()
  .regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'a customer id is 1 to 64 letters, digits or _.@-');

function isCalendarDate(value: string): boolean {
  const [year, month, day] = value.split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}
