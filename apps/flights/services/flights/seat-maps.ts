import type { SeatMap } from '../../contracts/flights.ts';

/**
 * The seed aircraft's seat maps, IATA style (cabins with their class, rows, columns and wings), written
 * out seat by seat when seeded: a stored seat map is data, and an airline would load its own.
 */

type ColumnKind = 'window' | 'aisle' | 'center';

interface CabinLayout {
  cabin_class: SeatMap['cabins'][number]['cabin_class'];
  first_row: number;
  last_row: number;
  /** Column letters with where each sits: `A: window`. */
  columns: Record<string, ColumnKind>;
  wings?: { first_row: number; last_row: number };
  exitRows?: number[];
  /** Rows with more room (after a bulkhead or an exit). */
  legroomRows?: number[];
}

function cabin(layout: CabinLayout): SeatMap['cabins'][number] {
  const columns = Object.entries(layout.columns).map(([column, kind]) => ({ column, characteristics: [kind] }));
  const rows: SeatMap['cabins'][number]['rows'] = [];
  for (let row = layout.first_row; row <= layout.last_row; row++) {
    const exit = layout.exitRows?.includes(row) ?? false;
    const overWing = layout.wings !== undefined && row >= layout.wings.first_row && row <= layout.wings.last_row;
    const legroom = layout.legroomRows?.includes(row) ?? false;
    rows.push({
      row,
      ...(exit ? { exit_row: true } : {}),
      seats: columns.map(({ column, characteristics }) => ({
        number: `${row}${column}`,
        column,
        characteristics: [
          ...characteristics,
          ...(exit ? (['exit_row'] as const) : []),
          ...(overWing ? (['over_wing'] as const) : []),
          ...(legroom ? (['extra_legroom'] as const) : []),
        ],
      })),
    });
  }
  return {
    cabin_class: layout.cabin_class,
    first_row: layout.first_row,
    last_row: layout.last_row,
    ...(layout.wings ? { wings: layout.wings } : {}),
    columns,
    rows,
  };
}

const narrowFirst = { A: 'window', C: 'aisle', D: 'aisle', F: 'window' } as const;
const sixAbreast = { A: 'window', B: 'center', C: 'aisle', D: 'aisle', E: 'center', F: 'window' } as const;

/** An Airbus A321: 20 first-class seats, 156 in economy. */
export function a321(flightNo: string): SeatMap {
  return {
    flight_no: flightNo,
    aircraft: 'Airbus A321',
    cabins: [
      cabin({ cabin_class: 'first', first_row: 1, last_row: 5, columns: narrowFirst }),
      cabin({
        cabin_class: 'economy',
        first_row: 8,
        last_row: 33,
        columns: sixAbreast,
        wings: { first_row: 14, last_row: 22 },
        exitRows: [15, 16],
        legroomRows: [8, 15, 16],
      }),
    ],
  };
}

/** A Boeing 737-800: 16 first-class seats, 126 in economy. */
export function b738(flightNo: string): SeatMap {
  return {
    flight_no: flightNo,
    aircraft: 'Boeing 737-800',
    cabins: [
      cabin({ cabin_class: 'first', first_row: 1, last_row: 4, columns: narrowFirst }),
      cabin({
        cabin_class: 'economy',
        first_row: 10,
        last_row: 30,
        columns: sixAbreast,
        wings: { first_row: 13, last_row: 21 },
        exitRows: [16, 17],
        legroomRows: [10, 16, 17],
      }),
    ],
  };
}

/** An Embraer 175: 12 first-class seats (one and two abreast), 56 in economy. */
export function e175(flightNo: string): SeatMap {
  return {
    flight_no: flightNo,
    aircraft: 'Embraer 175',
    cabins: [
      cabin({ cabin_class: 'first', first_row: 1, last_row: 4, columns: { A: 'window', C: 'aisle', D: 'window' } }),
      cabin({
        cabin_class: 'economy',
        first_row: 7,
        last_row: 20,
        columns: { A: 'window', B: 'aisle', C: 'aisle', D: 'window' },
        wings: { first_row: 10, last_row: 15 },
        exitRows: [11],
      }),
    ],
  };
}

/** Every seat number of a map, in row order. */
export function seatNumbers(map: SeatMap): string[] {
  return map.cabins.flatMap((c) => c.rows.flatMap((r) => r.seats.map((s) => s.number)));
}
