import type { ChassisError, ChassisNode } from '@chassis/core';
import type { FastifyInstance } from 'fastify';
import { listReservations, releaseSeat, reserveSeat } from '../../contracts/reservations.ts';
import { openApiDocument } from '../../src/openapi.ts';
import { errorList, serviceHttp } from '../http.ts';
import type { ReservationsService } from './service.ts';

/** The book's ms-reservations API (openapi/reservations.yaml), on its own port (8082). */
export function reservationsHttp(node: ChassisNode, service: ReservationsService): Promise<FastifyInstance> {
  return serviceHttp({
    node,
    health: service.health,
    document: openApiDocument('reservations'),
    answer: bookAnswer,
    routes(app, call) {
      app.get('/reservations', async (request) => {
        const { seats } = await call(listReservations, {
          flight_id: (request.query as Record<string, unknown>).flight_id,
        });
        return seats;
      });
      app.put('/reservations', async (request) => call(reserveSeat, request.body ?? {}));
      app.delete('/reservations', async (request) => call(releaseSeat, request.body ?? {}));
    },
  });
}

/**
 * The book's shapes: a taken seat is a 403 `{error, description: "Seat already reserved. Cannot
 * double-book"}`; bad input a 400 `{errors: [...]}`.
 */
function bookAnswer(error: ChassisError): { status: number; body: unknown } {
  if (error.code === 'VALIDATION') return errorList(error);
  if (error.code === 'SEAT_TAKEN') {
    return { status: 403, body: { error: 'SEAT_TAKEN', description: 'Seat already reserved. Cannot double-book' } };
  }
  const internal = error.status >= 500 && error.code === 'INTERNAL';
  return {
    status: error.status,
    body: { error: error.code, description: internal ? 'Internal error' : error.message },
  };
}
