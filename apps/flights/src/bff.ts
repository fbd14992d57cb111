import { ChassisError, fieldErrors, type Identity } from '@chassis/core';
import { type CustomRouteContext, type Route, route } from '@chassis/gateway';
import { z } from 'zod';
import { AirportCode, CustomerId, FlightDate, FlightId, FlightNo, SeatNum } from '../contracts/common.ts';
import { type Flight, getFlight, getSeatMap, listFlights, type SeatMap } from '../contracts/flights.ts';
import {
  countReservations,
  listReservations,
  rebookSeat,
  releaseSeat,
  reserveSeat,
} from '../contracts/reservations.ts';
import { seatNumbers } from '../services/flights/seat-maps.ts';
import { issueToken } from './users.ts';

/**
 * The backend for frontend (openapi/bff.yaml): the only public entry. It authenticates the caller and
 * composes the two services, which never call each other — a seat chart is the flights service's seat
 * map with the reservations service's holders folded in; a reservation is checked against the flight
 * and its seat map before the reservations service is asked.
 */

const Credentials = z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(256) });
const SearchQuery = z.object({
  from: AirportCode,
  to: AirportCode,
  date: FlightDate,
  passengers: z.coerce.number().int().min(1).max(9).default(1),
});
const SeatsQuery = z.object({ flight_no: FlightNo, date: FlightDate });
const ReserveBody = z.object({ flight_id: FlightId, seat_num: SeatNum, customer_id: CustomerId.optional() });
const RebookBody = z.object({
  flight_id: FlightId,
  seat_num: SeatNum,
  new_flight_id: FlightId.optional(),
  new_seat_num: SeatNum,
  customer_id: CustomerId.optional(),
});

/** The fields of a request, checked: a 400 naming each bad one. */
function parse<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const parsed = schema.safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  const fields = fieldErrors(parsed.error);
  throw new ChassisError('VALIDATION', `Invalid request: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`, {
    data: { fields },
  });
}

function invalidField(path: string, message: string): ChassisError {
  return new ChassisError('VALIDATION', `Invalid request: ${path}: ${message}`, {
    data: { fields: [{ path, message, code: 'custom' }] },
  });
}

/** Whom a request acts for: a customer for themselves; an agent for the customer they name. */
function customerFor(user: Identity | undefined, named: string | undefined): string {
  if (!user) throw new ChassisError('UNAUTHENTICATED', 'A bearer token is required');
  if (user.roles.includes('agent')) {
    if (named === undefined) throw invalidField('customer_id', 'an agent names the customer they act for');
    return named;
  }
  if (named !== undefined && named !== user.subject) {
    throw new ChassisError('FORBIDDEN', 'A customer acts only for themselves');
  }
  return user.subject;
}

/** The flight of an id, and that the seat is on its plane (a 400 otherwise: the seat is bad input). */
async function flightWithSeat(call: CustomRouteContext['call'], flightId: string, seat: string, field: string) {
  const flight = await call(getFlight, { flight_id: flightId });
  const map = await call(getSeatMap, { flight_no: flight.flight_no });
  if (!seatNumbers(map).includes(seat)) {
    throw invalidField(field, `flight ${flight.flight_no} has no seat ${seat} (${map.aircraft})`);
  }
  return flight;
}

function seatCount(map: SeatMap): number {
  return map.cabins.reduce((sum, cabin) => sum + cabin.rows.reduce((n, row) => n + row.seats.length, 0), 0);
}

const customerOrAgent = { roles: ['customer', 'agent'] } as const;

export function bffRoutes(secret: string): Route[] {
  return [
    route.custom(
      'POST',
      '/auth/token',
      async ({ request }) => {
        const { username, password } = parse(Credentials, request.body);
        return issueToken(secret, username, password);
      },
      { auth: 'public', summary: 'Exchange a username and password for an access token', tags: ['auth'] },
    ),
    route.custom(
      'GET',
      '/flights/search',
      async ({ request, call }) => {
        const query = parse(SearchQuery, request.query);
        const { flights } = await call(listFlights, { date: query.date, from: query.from, to: query.to });
        if (flights.length === 0) return [];
        const [{ counts }, maps] = await Promise.all([
          call(countReservations, { flight_ids: flights.map((f) => f.flight_id) }),
          seatMapsOf(call, flights),
        ]);
        return flights
          .map((flight) => ({
            ...flight,
            free_seats: seatCount(maps.get(flight.flight_no)!) - (counts[flight.flight_id] ?? 0),
          }))
          .filter((flight) => flight.free_seats >= query.passengers);
      },
      { auth: customerOrAgent, summary: 'Flights on a date with enough free seats', tags: ['flights'] },
    ),
    route.custom(
      'GET',
      '/flights/:flight_no/seats',
      async ({ request, call }) => {
        const { flight_no, date } = parse(SeatsQuery, { ...request.query, ...request.params });
        const { flights } = await call(listFlights, { date, flight_no });
        const flight = flights[0];
        if (!flight) throw new ChassisError('NOT_FOUND', `No flight ${flight_no} departs on ${date}`);
        const [map, { seats: held }] = await Promise.all([
          call(getSeatMap, { flight_no }),
          call(listReservations, { flight_id: flight.flight_id }),
        ]);
        return {
          ...flight,
          aircraft: map.aircraft,
          cabins: map.cabins.map((cabin) => ({
            ...cabin,
            rows: cabin.rows.map((row) => ({
              ...row,
              seats: row.seats.map((seat) => ({ ...seat, available: !Object.hasOwn(held, seat.number) })),
            })),
          })),
        };
      },
      { auth: customerOrAgent, summary: 'A flight’s seat chart: every seat with `available`', tags: ['flights'] },
    ),
    route.custom(
      'POST',
      '/reservations',
      async ({ request, call }) => {
        const body = parse(ReserveBody, request.body);
        const customer = customerFor(request.user, body.customer_id);
        await flightWithSeat(call, body.flight_id, body.seat_num, 'seat_num');
        await call(reserveSeat, { flight_id: body.flight_id, seat_num: body.seat_num, customer_id: customer });
        return { status: 'success', flight_id: body.flight_id, seat_num: body.seat_num, customer_id: customer };
      },
      { auth: customerOrAgent, status: 201, summary: 'Reserve a seat (409 when taken)', tags: ['reservations'] },
    ),
    route.custom(
      'POST',
      '/reservations/rebook',
      async ({ request, call }) => {
        const body = parse(RebookBody, request.body);
        const customer = customerFor(request.user, body.customer_id);
        const newFlightId = body.new_flight_id ?? body.flight_id;
        await call(getFlight, { flight_id: body.flight_id });
        await flightWithSeat(call, newFlightId, body.new_seat_num, 'new_seat_num');
        await call(rebookSeat, {
          flight_id: body.flight_id,
          seat_num: body.seat_num,
          customer_id: customer,
          new_flight_id: newFlightId,
          new_seat_num: body.new_seat_num,
        });
        return { status: 'success', flight_id: newFlightId, seat_num: body.new_seat_num, customer_id: customer };
      },
      { auth: customerOrAgent, summary: 'Move a reservation to another seat, atomically', tags: ['reservations'] },
    ),
    route.custom(
      'DELETE',
      '/reservations',
      async ({ request, call }) => {
        const body = parse(ReserveBody, request.body);
        const customer = customerFor(request.user, body.customer_id);
        await call(releaseSeat, { flight_id: body.flight_id, seat_num: body.seat_num, customer_id: customer });
        return undefined;
      },
      { auth: customerOrAgent, status: 204, summary: 'Release your seat (403 for another’s)', tags: ['reservations'] },
    ),
  ];
}

async function seatMapsOf(call: CustomRouteContext['call'], flights: readonly Flight[]): Promise<Map<string, SeatMap>> {
  const numbers = [...new Set(flights.map((f) => f.flight_no))];
  const maps = await Promise.all(numbers.map((flight_no) => call(getSeatMap, { flight_no })));
  return new Map(numbers.map((number, i) => [number, maps[i]!]));
}
