import { action } from '@chassis/core';
import { z } from 'zod';
import { AirportCode, DepartureDateTime, FlightDate, FlightId, FlightNo } from './common.ts';

export const Flight = z.object({
  flight_id: FlightId,
  flight_no: z.string(),
  origin_code: AirportCode,
  destination_code: AirportCode,
  /** Local time at the origin, `YYYY-MM-DDThh:mm`. */
  departure: z.string(),
});
export type Flight = z.infer<typeof Flight>;

const Characteristic = z.enum(['window', 'aisle', 'center', 'exit_row', 'over_wing', 'extra_legroom']);
export const Seat = z.object({ number: z.string(), column: z.string(), characteristics: z.array(Characteristic) });
export const SeatRow = z.object({ row: z.number().int(), exit_row: z.boolean().optional(), seats: z.array(Seat) });
export const Cabin = z.object({
  cabin_class: z.enum(['first', 'business', 'premium_economy', 'economy']),
  first_row: z.number().int(),
  last_row: z.number().int(),
  wings: z.object({ first_row: z.number().int(), last_row: z.number().int() }).optional(),
  columns: z.array(z.object({ column: z.string(), characteristics: z.array(z.enum(['window', 'aisle', 'center'])) })),
  rows: z.array(SeatRow),
});
/** IATA-style: cabins with their class, rows, columns and wings; each seat its number (`12C`). */
export const SeatMap = z.object({ flight_no: z.string(), aircraft: z.string(), cabins: z.array(Cabin).min(1) });
export type SeatMap = z.infer<typeof SeatMap>;

/** The book's `GET /flights?flight_no&departure_date_time`. */
export const findFlight = action('flights.findFlight', {
  description: 'The flight with this number departing at this local date and time; NOT_FOUND when none.',
  input: z.object({ flight_no: FlightNo, departure_date_time: DepartureDateTime }),
  output: Flight,
  idempotent: true,
});

export const getFlight = action('flights.getFlight', {
  description: 'A flight by its id; NOT_FOUND when none.',
  input: z.object({ flight_id: FlightId }),
  output: Flight,
  idempotent: true,
});

/** The flights of one day, by route or by number (the BFF's search and seat chart). */
export const listFlights = action('flights.listFlights', {
  description: 'The flights departing on a date, by origin and destination or by flight number, earliest first.',
  input: z.object({
    date: FlightDate,
    from: AirportCode.optional(),
    to: AirportCode.optional(),
    flight_no: FlightNo.optional(),
  }),
  output: z.object({ flights: z.array(Flight) }),
  idempotent: true,
});

/** The book's `GET /flights/{flight_no}/seat_map`. */
export const getSeatMap = action('flights.getSeatMap', {
  description: 'The seat map of the aircraft flying this flight number; NOT_FOUND when none.',
  input: z.object({ flight_no: FlightNo }),
  output: SeatMap,
  idempotent: true,
});
