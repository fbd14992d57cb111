import { ChassisError, defineService, handle, type ServiceDefinition } from '@chassis/core';
import {
  countReservations,
  listReservations,
  NotReserved,
  NotSeatHolder,
  rebookSeat,
  releaseSeat,
  reserveSeat,
  SeatTaken,
} from '../../contracts/reservations.ts';
import { cachedHealth, type ServiceHealth } from '../health.ts';
import { type ChangeOutcome, SeatStore } from './seats.ts';

export interface ReservationsServiceOptions {
  /** `redis://127.0.0.1:6379`. */
  redisUrl: string;
  /** Before every key; default none. */
  keyPrefix?: string;
}

export interface ReservationsService {
  definition: ServiceDefinition;
  health: ServiceHealth;
}

/**
 * Who holds which seat (specs/flights.md), in Redis. It knows nothing of flights or seat maps: the BFF
 * checks that a flight and a seat exist before it asks, as the book's services never call each other.
 */
export function reservationsService(options: ReservationsServiceOptions): ReservationsService {
  let opened: SeatStore | undefined;
  const seats = (): SeatStore => {
    if (!opened) throw new ChassisError('UNAVAILABLE', 'The reservations service has not started');
    return opened;
  };
  const health = cachedHealth('reservations', {
    name: 'redis',
    componentId: () => 'redis',
    ping: () => seats().ping(),
  });
  const definition = defineService({
    name: 'reservations',
    version: '0.1.0',
    description: 'Seat reservations, one Redis hash per flight',
    health: { redis: health.check },
    async start() {
      opened = new SeatStore(options.redisUrl, options.keyPrefix);
      await opened.connected();
    },
    async stop() {
      await opened?.close();
    },
    actions: [
      handle(reserveSeat, async ({ flight_id, seat_num, customer_id }) => {
        if (!(await seats().reserve(flight_id, seat_num, customer_id))) {
          throw SeatTaken(`Seat ${seat_num} is already reserved. Cannot double-book`, { flight_id, seat_num });
        }
        return { status: 'success' as const };
      }),
      handle(listReservations, async ({ flight_id }) => ({ seats: await seats().list(flight_id) })),
      handle(countReservations, async ({ flight_ids }) => ({ counts: await seats().counts(flight_ids) })),
      handle(releaseSeat, async ({ flight_id, seat_num, customer_id }) => {
        refuse(await seats().release(flight_id, seat_num, customer_id), seat_num, seat_num);
        return { status: 'success' as const };
      }),
      handle(rebookSeat, async (input) => {
        const outcome = await seats().rebook(
          input.flight_id,
          input.seat_num,
          input.customer_id,
          input.new_flight_id,
          input.new_seat_num,
        );
        refuse(outcome, input.seat_num, input.new_seat_num);
        return { status: 'success' as const };
      }),
    ],
  });
  return { definition, health };
}

/** Turns a script's refusal into the contract's error; `OK` passes. */
function refuse(outcome: ChangeOutcome, seat: string, wanted: string): void {
  switch (outcome) {
    case 'OK':
      return;
    case 'NOT_RESERVED':
      throw NotReserved(`Seat ${seat} is not reserved`);
    case 'NOT_HOLDER':
      throw NotSeatHolder(`Seat ${seat} is reserved by another customer`);
    case 'SEAT_TAKEN':
      throw SeatTaken(`Seat ${wanted} is already reserved. Cannot double-book`);
  }
}
