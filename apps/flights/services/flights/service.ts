import { ChassisError, defineService, handle, type ServiceDefinition } from '@chassis/core';
import { findFlight, getFlight, getSeatMap, listFlights } from '../../contracts/flights.ts';
import { cachedHealth, type ServiceHealth } from '../health.ts';
import { FlightsStore } from './store.ts';

export interface FlightsServiceOptions {
  /** `mysql://…` (MariaDB), `postgres://…`, `pglite://<dir>` or `pglite://memory`. */
  databaseUrl: string;
  /** The schema its tables live in (on MariaDB, a database). Default `flights`. */
  schema?: string;
}

export interface FlightsService {
  definition: ServiceDefinition;
  health: ServiceHealth;
}

/** Flights and seat maps (specs/flights.md), in a database of their own. */
export function flightsService(options: FlightsServiceOptions): FlightsService {
  let opened: FlightsStore | undefined;
  const store = (): FlightsStore => {
    if (!opened) throw new ChassisError('UNAVAILABLE', 'The flights service has not started');
    return opened;
  };
  const health = cachedHealth('flights', {
    name: 'database',
    componentId: () => opened?.kind ?? 'database',
    ping: () => store().ping(),
  });
  const definition = defineService({
    name: 'flights',
    version: '0.1.0',
    description: 'Flights and the seat maps of their aircraft',
    health: { database: health.check },
    async start() {
      opened = await FlightsStore.open(options.databaseUrl, options.schema);
    },
    async stop() {
      await opened?.close();
    },
    actions: [
      handle(findFlight, async ({ flight_no, departure_date_time }) => {
        const flight = await store().findFlight(flight_no, departure_date_time);
        if (!flight) throw new ChassisError('NOT_FOUND', `No flight ${flight_no} departs at ${departure_date_time}`);
        return flight;
      }),
      handle(getFlight, async ({ flight_id }) => {
        const flight = await store().getFlight(flight_id);
        if (!flight) throw new ChassisError('NOT_FOUND', `No flight has id ${flight_id}`);
        return flight;
      }),
      handle(listFlights, async ({ date, from, to, flight_no }) => ({
        flights: await store().listFlights({ date, from, to, flightNo: flight_no }),
      })),
      handle(getSeatMap, async ({ flight_no }) => {
        const map = await store().seatMap(flight_no);
        if (!map) throw new ChassisError('NOT_FOUND', `No flight number ${flight_no}`);
        return map;
      }),
    ],
  });
  return { definition, health };
}
