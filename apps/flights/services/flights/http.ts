import type { ChassisNode } from '@chassis/core';
import type { FastifyInstance } from 'fastify';
import { findFlight, getSeatMap } from '../../contracts/flights.ts';
import { openApiDocument } from '../../src/openapi.ts';
import { errorList, serviceHttp } from '../http.ts';
import type { FlightsService } from './service.ts';

/** The book's ms-flights API (openapi/flights.yaml), on its own port (8081). */
export function flightsHttp(node: ChassisNode, service: FlightsService): Promise<FastifyInstance> {
  return serviceHttp({
    node,
    health: service.health,
    document: openApiDocument('flights'),
    answer: errorList,
    routes(app, call) {
      app.get('/flights', async (request) => {
        const query = request.query as Record<string, unknown>;
        return call(findFlight, { flight_no: query.flight_no, departure_date_time: query.departure_date_time });
      });
      app.get('/flights/:flight_no/seat_map', async (request) =>
        call(getSeatMap, { flight_no: (request.params as { flight_no: string }).flight_no }),
      );
    },
  });
}
