import {
  ChassisError,
  type ChassisNode,
  drainOnSignals,
  envLimit,
  envPort,
  jwtVerifier,
  runNode,
  tokenSecret,
} from '@chassis/core';
import { createGateway, type Gateway } from '@chassis/gateway';
import type { FastifyInstance } from 'fastify';
import { flightsHttp } from '../services/flights/http.ts';
import { flightsService } from '../services/flights/service.ts';
import { reservationsHttp } from '../services/reservations/http.ts';
import { reservationsService } from '../services/reservations/service.ts';
import { bffRoutes } from './bff.ts';
import { openApiDocument } from './openapi.ts';

/** Used when CHASSIS_JWT_SECRET is not set, outside production only: anyone can read it here. */
const DEVELOPMENT_SECRET = 'flights-development-secret-not-for-production';

/** What one process can host; `SERVICES` picks (all three when empty). */
export const FLIGHTS_PARTS = ['flights', 'reservations', 'bff'] as const;
export type FlightsPart = (typeof FLIGHTS_PARTS)[number];

export interface FlightsOptions {
  /**
   * `CHASSIS_TRANSPORT`, `SERVICES` (of flights, reservations, bff), `DATABASE_URL` (the flights
   * service's: `mysql://…`, `postgres://…`, `pglite://…`), `FLIGHTS_SCHEMA`, `REDIS_URL`,
   * `REDIS_KEY_PREFIX`, `PORT` (the BFF), `FLIGHTS_PORT`, `RESERVATIONS_PORT`, `CHASSIS_JWT_SECRET`, …
   */
  env?: Record<string, string | undefined>;
  host?: string;
  /** Drain and exit on SIGTERM and SIGINT: the HTTP servers first, then the node. */
  handleSignals?: boolean;
}

export interface FlightsSystem {
  node: ChassisNode;
  /** The BFF's address, e.g. `http://127.0.0.1:8080`, when this process serves it. */
  url: string | undefined;
  /** The flights service's own HTTP API (8081), when hosted here. */
  flightsUrl: string | undefined;
  /** The reservations service's own HTTP API (8082), when hosted here. */
  reservationsUrl: string | undefined;
  /** Which database the flights service uses, when hosted here. */
  databaseUrl: string | undefined;
  stop(): Promise<void>;
}

/**
 * Flight reservations on one node: the services and the BFF that `SERVICES` names (all by default),
 * each service with its own HTTP port beside it. With nothing configured: the memory transport, the
 * flights service on PGlite in `.data/flights`, reservations on the local Redis.
 */
export async function startFlights(options: FlightsOptions = {}): Promise<FlightsSystem> {
  const env = options.env ?? process.env;
  const parts = selectParts(env.SERVICES);
  const secret = tokenSecret(env, DEVELOPMENT_SECRET);
  const host = options.host ?? env.HOST ?? '127.0.0.1';
  const databaseUrl = env.DATABASE_URL || 'pglite://.data/flights';
  const flights = flightsService({ databaseUrl, schema: env.FLIGHTS_SCHEMA || undefined });
  const reservations = reservationsService({
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    keyPrefix: env.REDIS_KEY_PREFIX || '',
  });
  const hosted = [
    ...(parts.includes('flights') ? [flights.definition] : []),
    ...(parts.includes('reservations') ? [reservations.definition] : []),
  ];
  const verifier = jwtVerifier({ secret });
  const node = await runNode({
    services: hosted,
    // The parts were picked above; the node runs every service it is given.
    env: { ...env, SERVICES: '' },
    handleSignals: false,
    identity: verifier,
    ...(env.LOG_LEVEL ? {} : { logLevel: 'warn' as const }),
  });
  const servers: { close(): Promise<unknown> }[] = [];
  const stop = async () => {
    // Requests in flight finish, new ones are refused; then the node drains.
    await Promise.allSettled(servers.map((server) => server.close()));
    await node.stop();
  };
  const listen = async (app: FastifyInstance | Gateway, port: number) => {
    servers.push(app);
    return app.listen({ port, host });
  };
  let url: string | undefined;
  let flightsUrl: string | undefined;
  let reservationsUrl: string | undefined;
  try {
    const flightsPort = envPort(env, 'FLIGHTS_PORT', 8081);
    if (parts.includes('flights') && flightsPort !== false) {
      flightsUrl = await listen(await flightsHttp(node, flights), flightsPort);
    }
    const reservationsPort = envPort(env, 'RESERVATIONS_PORT', 8082);
    if (parts.includes('reservations') && reservationsPort !== false) {
      reservationsUrl = await listen(await reservationsHttp(node, reservations), reservationsPort);
    }
    const bffPort = envPort(env, 'PORT', 8080);
    if (parts.includes('bff') && bffPort !== false) {
      const rateLimit = envLimit(env, 'RATE_LIMIT_PER_MINUTE', 300);
      const gateway = await createGateway({
        node,
        prefix: '/api',
        routes: bffRoutes(secret),
        auth: verifier,
        // Per caller (token subject, else address); `RATE_LIMIT_PER_MINUTE=off` for load tests and the races.
        rateLimit: rateLimit === false ? false : { max: rateLimit },
        // The document is openapi/bff.yaml, written before the routes, not one generated from them.
        openapi: false,
        register: (app) => {
          app.get('/api/openapi.json', async () => openApiDocument('bff'));
        },
      });
      url = await listen(gateway, bffPort);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  if (options.handleSignals) drainOnSignals(node.log, stop);
  return {
    node,
    url,
    flightsUrl,
    reservationsUrl,
    databaseUrl: parts.includes('flights') ? databaseUrl : undefined,
    stop,
  };
}

function selectParts(services: string | undefined): FlightsPart[] {
  const names = (services ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  if (names.length === 0) return [...FLIGHTS_PARTS];
  const unknown = names.filter((name) => !(FLIGHTS_PARTS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new ChassisError(
      'CONFIG',
      `SERVICES names ${unknown.join(', ')}, which flight reservations does not have: use ${FLIGHTS_PARTS.join(', ')}`,
    );
  }
  return names as FlightsPart[];
}
