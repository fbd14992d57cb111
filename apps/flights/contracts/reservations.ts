import { action, defineError } from '@chassis/core';
import { z } from 'zod';
import { CustomerId, FlightId, SeatNum } from './common.ts';

/** Someone holds the seat: nothing changed. */
export const SeatTaken = defineError('SEAT_TAKEN', { status: 409, retryable: false });
/** The seat is held by another customer than the one named. */
export const NotSeatHolder = defineError('NOT_SEAT_HOLDER', { status: 403, retryable: false });
/** Nobody holds the seat. */
export const NotReserved = defineError('NOT_RESERVED', { status: 404, retryable: false });

const Success = z.object({ status: z.literal('success') });

/** The book's `PUT /reservations`: set-if-absent, so of two requests for one seat only one wins. */
export const reserveSeat = action('reservations.reserveSeat', {
  description: 'Reserves a seat for a customer if nobody holds it (HSETNX); SEAT_TAKEN otherwise.',
  input: z.object({ flight_id: FlightId, seat_num: SeatNum, customer_id: CustomerId }),
  output: Success,
  idempotent: false,
});

/** The book's `GET /reservations?flight_id`. */
export const listReservations = action('reservations.listReservations', {
  description: 'Seat number → customer id, for every held seat of a flight.',
  input: z.object({ flight_id: FlightId }),
  output: z.object({ seats: z.record(z.string(), z.string()) }),
  idempotent: true,
});

export const countReservations = action('reservations.countReservations', {
  description: 'How many seats are held on each flight.',
  input: z.object({ flight_ids: z.array(FlightId).max(200) }),
  output: z.object({ counts: z.record(z.string(), z.number().int().nonnegative()) }),
  idempotent: true,
});

/** The book's `DELETE /reservations`: only the seat's holder may release it. */
export const releaseSeat = action('reservations.releaseSeat', {
  description: 'Releases a seat held by this customer; NOT_SEAT_HOLDER or NOT_RESERVED otherwise.',
  input: z.object({ flight_id: FlightId, seat_num: SeatNum, customer_id: CustomerId }),
  output: Success,
  idempotent: false,
});

/** Moves a customer's reservation to another seat (of the same flight or another) in one step. */
export const rebookSeat = action('reservations.rebookSeat', {
  description:
    'Takes the new seat and frees the old one together, or changes nothing (SEAT_TAKEN, NOT_SEAT_HOLDER, NOT_RESERVED).',
  input: z.object({
    flight_id: FlightId,
    seat_num: SeatNum,
    customer_id: CustomerId,
    new_flight_id: FlightId,
    new_seat_num: SeatNum,
  }),
  output: Success,
  idempotent: false,
});
