import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeatMap } from '../contracts/flights.ts';
import { a321, b738, e175, seatNumbers } from '../services/flights/seat-maps.ts';
import { checkSchema } from './openapi-check.ts';

test('the seed seat maps are IATA-style and consistent: each seat is its row and column, once', () => {
  for (const [map, seats] of [
    [a321('AA2532'), 176],
    [b738('DL401'), 142],
    [e175('UA5678'), 68],
  ] as const) {
    SeatMap.parse(map);
    checkSchema('flights', '/components/schemas/SeatMap', map);
    const numbers = seatNumbers(map);
    assert.equal(numbers.length, seats, map.aircraft);
    assert.equal(new Set(numbers).size, numbers.length, `${map.aircraft}: no seat twice`);
    for (const cabin of map.cabins) {
      assert.equal(cabin.rows.length, cabin.last_row - cabin.first_row + 1);
      const columns = cabin.columns.map((c) => c.column);
      for (const row of cabin.rows) {
        assert.deepEqual(
          row.seats.map((s) => s.column),
          columns,
        );
        for (const seat of row.seats) assert.equal(seat.number, `${row.row}${seat.column}`);
      }
      if (cabin.wings) assert.ok(cabin.wings.first_row >= cabin.first_row && cabin.wings.last_row <= cabin.last_row);
      const windows = cabin.columns.filter((c) => c.characteristics.includes('window')).map((c) => c.column);
      assert.deepEqual([windows[0], windows.at(-1)], [columns[0], columns.at(-1)], 'windows at both ends');
    }
  }
});
