import { MysqlAdapter, sql } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely/migration';
import type { SeatMap } from '../../contracts/flights.ts';
import { a321, b738, e175 } from './seat-maps.ts';

/**
 * The flights service's schema and seed data, as Kysely migrations rather than `.sql` files: the schema
 * builder writes each statement in the database's own dialect, so the same migrations run on PGlite,
 * PostgreSQL and MariaDB (where the schema is a database of its own, created by the first migration run).
 * The one type that differs is named here: PostgreSQL has no `datetime`, MariaDB's `timestamp` ends in 2038.
 */
export function flightsMigrations(schema: string): MigrationProvider {
  const migrations: Record<string, Migration> = {
    '001_tables': {
      async up(db) {
        const dateTime = db.getExecutor().adapter instanceof MysqlAdapter ? sql`datetime` : sql`timestamp`;
        const scoped = db.withSchema(schema);
        await scoped.schema
          .createTable('seat_maps')
          .addColumn('flight_no', 'varchar(12)', (c) => c.primaryKey())
          .addColumn('seat_map', 'json', (c) => c.notNull())
          .addColumn('origin_code', 'char(3)', (c) => c.notNull())
          .addColumn('destination_code', 'char(3)', (c) => c.notNull())
          .execute();
        await scoped.schema
          .createTable('flights')
          .addColumn('flight_id', 'varchar(36)', (c) => c.primaryKey())
          .addColumn('flight_no', 'varchar(12)', (c) => c.notNull().references('seat_maps.flight_no'))
          .addColumn('flight_date', dateTime, (c) => c.notNull())
          .addUniqueConstraint('flights_flight_no_date', ['flight_no', 'flight_date'])
          .execute();
        await scoped.schema.createIndex('flights_by_date').on('flights').column('flight_date').execute();
      },
    },
    '002_seed': {
      async up(db) {
        const scoped = db.withSchema(schema);
        const maps: [SeatMap, string, string][] = [
          [a321('AA2532'), 'LAX', 'DCA'],
          [b738('DL401'), 'JFK', 'SFO'],
          [e175('UA5678'), 'ORD', 'DEN'],
        ];
        await scoped
          .insertInto('seat_maps')
          .values(
            maps.map(([map, origin, destination]) => ({
              flight_no: map.flight_no,
              seat_map: JSON.stringify(map),
              origin_code: origin,
              destination_code: destination,
            })),
          )
          .execute();
        // Fixed ids, so that a flight's reservations (in Redis) still point at it after a reseed.
        await scoped
          .insertInto('flights')
          .values([
            {
              flight_id: '5c1e5c5e-8f2b-4b0e-9d5a-2a5322027517',
              flight_no: 'AA2532',
              flight_date: '2027-05-17 13:20:00',
            },
            {
              flight_id: '5c1e5c5e-8f2b-4b0e-9d5a-2a5322027518',
              flight_no: 'AA2532',
              flight_date: '2027-05-18 13:20:00',
            },
            {
              flight_id: '0d4c1f3a-6b7e-4c2d-8e9f-4010e2027517',
              flight_no: 'DL401',
              flight_date: '2027-05-17 08:00:00',
            },
            {
              flight_id: '9a8b7c6d-5e4f-4a3b-9c2d-5678e2027517',
              flight_no: 'UA5678',
              flight_date: '2027-05-17 10:15:00',
            },
          ])
          .execute();
      },
    },
  };
  return { getMigrations: async () => migrations };
}
