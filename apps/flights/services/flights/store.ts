import { ChassisError, isChassisError } from '@chassis/core';
import { type AnyTables, Database } from '@chassis/data';
import { type Kysely, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import { type Flight, SeatMap } from '../../contracts/flights.ts';
import { flightsMigrations } from './migrations.ts';

interface FlightsTables {
  seat_maps: { flight_no: string; seat_map: unknown; origin_code: string; destination_code: string };
  flights: { flight_id: string; flight_no: string; flight_date: string };
}

/**
 * The flights service's tables, through Kysely and nothing dialect-specific in the queries, so that the
 * same store runs on PGlite, PostgreSQL and MariaDB: dates go in and out as `YYYY-MM-DD hh:mm:ss`
 * strings (`cast(… as char(19))` reads alike on both), the seat map as JSON text.
 */
export class FlightsStore {
  /** Which database this is, for health and logs: `postgres`, `pglite`, `mysql`… */
  readonly kind: string;
  private readonly db: Kysely<FlightsTables>;
  private readonly release: () => Promise<void>;

  private constructor(kind: string, db: Kysely<FlightsTables>, release: () => Promise<void>) {
    this.kind = kind;
    this.db = db;
    this.release = release;
  }

  /** Opens the database of `url`, brings schema `schema` up to date (creating it) and seeds it. */
  static async open(url: string, schema = 'flights'): Promise<FlightsStore> {
    const database = await Database.open(url);
    try {
      return await FlightsStore.over(database.kysely, schema, database.kind, () => database.close());
    } catch (error) {
      await database.close().catch(() => undefined);
      throw error;
    }
  }

  /** The store on a Kysely instance of any dialect; `release` ends its connections. */
  static async over(
    kysely: Kysely<AnyTables>,
    schema: string,
    kind: string,
    release: () => Promise<void>,
  ): Promise<FlightsStore> {
    const migrator = new Migrator({ db: kysely, provider: flightsMigrations(schema), migrationTableSchema: schema });
    const { error, results } = await migrator.migrateToLatest();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'a migration';
      throw new ChassisError('CONFIG', `The flights schema "${schema}" could not be migrated: ${failed} failed`, {
        cause: error,
      });
    }
    return new FlightsStore(kind, kysely.withSchema(schema) as unknown as Kysely<FlightsTables>, release);
  }

  findFlight(flightNo: string, departure: string): Promise<Flight | undefined> {
    return unavailableWhenDown(async () => {
      const row = await this.flights()
        .where('f.flight_no', '=', flightNo)
        .where('f.flight_date', '=', `${departure.replace('T', ' ')}:00`)
        .executeTakeFirst();
      return row && toFlight(row);
    });
  }

  getFlight(flightId: string): Promise<Flight | undefined> {
    return unavailableWhenDown(async () => {
      const row = await this.flights().where('f.flight_id', '=', flightId).executeTakeFirst();
      return row && toFlight(row);
    });
  }

  listFlights(filter: { date: string; from?: string; to?: string; flightNo?: string }): Promise<Flight[]> {
    return unavailableWhenDown(async () => {
      const next = new Date(`${filter.date}T00:00:00Z`);
      next.setUTCDate(next.getUTCDate() + 1);
      let query = this.flights()
        .where('f.flight_date', '>=', `${filter.date} 00:00:00`)
        .where('f.flight_date', '<', `${next.toISOString().slice(0, 10)} 00:00:00`);
      if (filter.from) query = query.where('m.origin_code', '=', filter.from);
      if (filter.to) query = query.where('m.destination_code', '=', filter.to);
      if (filter.flightNo) query = query.where('f.flight_no', '=', filter.flightNo);
      const rows = await query.orderBy('f.flight_date').orderBy('f.flight_no').execute();
      return rows.map(toFlight);
    });
  }

  seatMap(flightNo: string): Promise<SeatMap | undefined> {
    return unavailableWhenDown(async () => {
      const row = await this.db
        .selectFrom('seat_maps')
        .select('seat_map')
        .where('flight_no', '=', flightNo)
        .executeTakeFirst();
      if (!row) return undefined;
      // PostgreSQL and MySQL hand JSON back parsed; MariaDB's JSON is text underneath.
      return SeatMap.parse(typeof row.seat_map === 'string' ? JSON.parse(row.seat_map) : row.seat_map);
    });
  }

  /** A round trip to the database, for the health check. */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  close(): Promise<void> {
    return this.release();
  }

  private flights() {
    return this.db
      .selectFrom('flights as f')
      .innerJoin('seat_maps as m', 'm.flight_no', 'f.flight_no')
      .select([
        'f.flight_id',
        'f.flight_no',
        'm.origin_code',
        'm.destination_code',
        sql<string>`cast(f.flight_date as char(19))`.as('departure'),
      ]);
  }
}

function toFlight(row: {
  flight_id: string;
  flight_no: string;
  origin_code: string;
  destination_code: string;
  departure: string;
}): Flight {
  return {
    flight_id: row.flight_id,
    flight_no: row.flight_no,
    origin_code: row.origin_code.trim(),
    destination_code: row.destination_code.trim(),
    departure: row.departure.slice(0, 16).replace(' ', 'T'),
  };
}

/** Error codes of a connection that failed or was lost (Node, pg, mysql2), as opposed to a bad query. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'PROTOCOL_CONNECTION_LOST',
  '57P01',
  '57P03',
  '08000',
  '08003',
  '08006',
]);

/** A database that cannot be reached is a 503 (UNAVAILABLE, retryable); a failing query stays a failure. */
async function unavailableWhenDown<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isChassisError(error)) throw error;
    const code = String((error as { code?: unknown })?.code ?? '');
    const message = error instanceof Error ? error.message : String(error);
    if (
      CONNECTION_CODES.has(code) ||
      /connect|terminat|Connection (is )?closed|pool (is )?(ended|closed)/i.test(message)
    ) {
      throw new ChassisError('UNAVAILABLE', `The flights database cannot be reached: ${message}`, { cause: error });
    }
    throw error;
  }
}
