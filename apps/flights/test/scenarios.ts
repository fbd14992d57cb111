import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { apiClient, type Body } from './openapi-check.ts';

/** The seed flights (services/flights/migrations.ts). */
export const AA2532_MAY17 = '5c1e5c5e-8f2b-4b0e-9d5a-2a5322027517';
export const AA2532_MAY18 = '5c1e5c5e-8f2b-4b0e-9d5a-2a5322027518';
export const DL401_MAY17 = '0d4c1f3a-6b7e-4c2d-8e9f-4010e2027517';
export const UA5678_MAY17 = '9a8b7c6d-5e4f-4a3b-9c2d-5678e2027517';
const NO_SUCH_FLIGHT = '11111111-2222-4333-8444-555555555555';

export interface RunningFlights {
  /** The BFF. */
  url: string;
  /** The flights service's own API. */
  flightsUrl: string;
  /** The reservations service's own API. */
  reservationsUrl: string;
  /** The flights service's database, as its health check names it: `pglite`, `mysql`… */
  databaseKind: string;
  stop(): Promise<void>;
}

function seatsOf(chart: Body): { number: string; available: boolean }[] {
  return chart.cabins.flatMap((cabin: Body) => cabin.rows.flatMap((row: Body) => row.seats));
}

function seat(chart: Body, number: string): { number: string; available: boolean } {
  const found = seatsOf(chart).find((s) => s.number === number);
  assert.ok(found, `seat ${number} is on the chart`);
  return found;
}

/**
 * The issue's "Shows it is done", through HTTP: search, seat chart, reserve, double-book refused, rebook,
 * release, every bad-input rule, the two races, and the services' own APIs — each answer checked
 * against the OpenAPI documents. Reservations made here use seats no other test of the file touches.
 */
export function describeFlights(title: string, skip: false | string, start: () => Promise<RunningFlights>): void {
  describe(title, { skip }, () => {
    let system: RunningFlights;
    let bff: ReturnType<typeof apiClient>;
    let flightsApi: ReturnType<typeof apiClient>;
    let reservationsApi: ReturnType<typeof apiClient>;
    const tokens = { flyer: '', family: '', agent: '' };

    before(async () => {
      system = await start();
      bff = apiClient('bff', system.url);
      flightsApi = apiClient('flights', system.flightsUrl);
      reservationsApi = apiClient('reservations', system.reservationsUrl);
      for (const username of ['flyer', 'family', 'agent'] as const) {
        const answer = await bff('POST', '/api/auth/token', { body: { username, password: `${username}-password` } });
        assert.equal(answer.status, 200);
        tokens[username] = answer.body.access_token;
      }
    });
    after(async () => {
      await system?.stop();
    });

    const chart = async (flightNo: string, date: string, token = tokens.flyer) => {
      const answer = await bff('GET', `/api/flights/${flightNo}/seats?date=${date}`, { token });
      assert.equal(answer.status, 200);
      return answer.body;
    };

    test('tokens: the seed users get one; a wrong password, a missing field or no token is refused', async () => {
      assert.equal(tokens.flyer!.split('.').length, 3);
      const wrong = await bff('POST', '/api/auth/token', { body: { username: 'flyer', password: 'nope' } });
      assert.equal(wrong.status, 401);
      const nobody = await bff('POST', '/api/auth/token', { body: { username: 'nobody', password: 'nope' } });
      assert.equal(nobody.status, 401);
      const missing = await bff('POST', '/api/auth/token', { body: { username: 'flyer' } });
      assert.equal(missing.status, 400);
      assert.deepEqual(
        missing.body.error.details.fields.map((f: Body) => f.path),
        ['password'],
      );
      const notJson = await bff('POST', '/api/auth/token', { rawBody: '{"username":' });
      assert.equal(notJson.status, 400);
      const anonymous = await bff('GET', '/api/flights/search?from=LAX&to=DCA&date=2027-05-17');
      assert.equal(anonymous.status, 401);
      const forged = await bff('GET', '/api/flights/search?from=LAX&to=DCA&date=2027-05-17', { token: 'a.b.c' });
      assert.equal(forged.status, 401);
    });

    test('search: flights of a day between two airports, with their free seats', async () => {
      const found = await bff('GET', '/api/flights/search?from=LAX&to=DCA&date=2027-05-17&passengers=2', {
        token: tokens.family,
      });
      assert.equal(found.status, 200);
      assert.equal(found.body.length, 1);
      assert.deepEqual(
        { ...found.body[0], free_seats: undefined },
        {
          flight_id: AA2532_MAY17,
          flight_no: 'AA2532',
          origin_code: 'LAX',
          destination_code: 'DCA',
          departure: '2027-05-17T13:20',
          free_seats: undefined,
        },
      );
      assert.ok(found.body[0].free_seats > 100);
      const none = await bff('GET', '/api/flights/search?from=LAX&to=DCA&date=2027-05-19', { token: tokens.flyer });
      assert.deepEqual([none.status, none.body], [200, []]);
      const bad = await bff('GET', '/api/flights/search?from=lax&to=DCA&date=2027-02-30&passengers=0', {
        token: tokens.flyer,
      });
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.body.error.details.fields.map((f: Body) => f.path).sort(), ['date', 'from', 'passengers']);
      const missing = await bff('GET', '/api/flights/search?to=DCA', { token: tokens.flyer });
      assert.equal(missing.status, 400);
    });

    test('seat chart: every seat has a number and says whether it is available', async () => {
      const body = await chart('AA2532', '2027-05-17');
      assert.equal(body.flight_id, AA2532_MAY17);
      assert.equal(body.aircraft, 'Airbus A321');
      assert.deepEqual(
        body.cabins.map((c: Body) => c.cabin_class),
        ['first', 'economy'],
      );
      const seats = seatsOf(body);
      assert.equal(seats.length, 176);
      assert.ok(seats.every((s) => /^\d{1,3}[A-Z]$/.test(s.number) && typeof s.available === 'boolean'));
      assert.equal(seat(body, '12C').available, true);
      const lower = await chart('aa2532', '2027-05-17');
      assert.equal(lower.flight_id, AA2532_MAY17);
      const notFlying = await bff('GET', '/api/flights/AA2532/seats?date=2027-05-19', { token: tokens.flyer });
      assert.equal(notFlying.status, 404);
      const badNumber = await bff('GET', '/api/flights/A-1/seats?date=2027-05-17', { token: tokens.flyer });
      assert.equal(badNumber.status, 400);
      assert.deepEqual(
        badNumber.body.error.details.fields.map((f: Body) => f.path),
        ['flight_no'],
      );
      const noDate = await bff('GET', '/api/flights/AA2532/seats', { token: tokens.flyer });
      assert.equal(noDate.status, 400);
      assert.deepEqual(
        noDate.body.error.details.fields.map((f: Body) => f.path),
        ['date'],
      );
    });

    test('reserve: 201, then the seat is taken on the chart and a second reservation is a 409', async () => {
      const reserved = await bff('POST', '/api/reservations', {
        token: tokens.flyer,
        body: { flight_id: AA2532_MAY17, seat_num: '12C' },
      });
      assert.equal(reserved.status, 201);
      assert.deepEqual(reserved.body, {
        status: 'success',
        flight_id: AA2532_MAY17,
        seat_num: '12C',
        customer_id: 'flyer',
      });
      assert.equal(seat(await chart('AA2532', '2027-05-17'), '12C').available, false);
      const twice = await bff('POST', '/api/reservations', {
        token: tokens.family,
        body: { flight_id: AA2532_MAY17, seat_num: '12C' },
      });
      assert.equal(twice.status, 409);
      assert.equal(twice.body.error.code, 'SEAT_TAKEN');
      const search = await bff('GET', '/api/flights/search?from=LAX&to=DCA&date=2027-05-17', { token: tokens.flyer });
      assert.equal(
        search.body[0].free_seats,
        176 - seatsOf(await chart('AA2532', '2027-05-17')).filter((s) => !s.available).length,
      );
    });

    test('reserve: bad input is a 400 naming the field; an unknown flight a 404; acting for another a 403', async () => {
      const as = (token: string | undefined, body: unknown) => bff('POST', '/api/reservations', { token, body });
      const cases: [unknown, string[]][] = [
        [{ flight_id: AA2532_MAY17, seat_num: '99Z' }, ['seat_num']],
        [{ flight_id: AA2532_MAY17, seat_num: '12' }, ['seat_num']],
        [{ flight_id: 'AA2532', seat_num: '12C' }, ['flight_id']],
        [{}, ['flight_id', 'seat_num']],
        [{ flight_id: AA2532_MAY17, seat_num: '3B' }, ['seat_num']], // first class on an A321 has no B
      ];
      for (const [body, fields] of cases) {
        const answer = await as(tokens.flyer, body);
        assert.equal(answer.status, 400, JSON.stringify(body));
        assert.deepEqual(answer.body.error.details.fields.map((f: Body) => f.path).sort(), fields);
      }
      assert.equal((await as(tokens.flyer, { flight_id: NO_SUCH_FLIGHT, seat_num: '12C' })).status, 404);
      const forOther = await as(tokens.flyer, { flight_id: AA2532_MAY17, seat_num: '13C', customer_id: 'family' });
      assert.equal(forOther.status, 403);
      const agentForNobody = await as(tokens.agent, { flight_id: AA2532_MAY17, seat_num: '13C' });
      assert.equal(agentForNobody.status, 400);
      assert.deepEqual(
        agentForNobody.body.error.details.fields.map((f: Body) => f.path),
        ['customer_id'],
      );
      assert.equal((await as(undefined, { flight_id: AA2532_MAY17, seat_num: '13C' })).status, 401);
      const forCustomer = await as(tokens.agent, { flight_id: AA2532_MAY17, seat_num: '13C', customer_id: 'family' });
      assert.deepEqual([forCustomer.status, forCustomer.body.customer_id], [201, 'family']);
    });

    test('rebook: to a free seat at once; onto a taken one a 409 with nothing changed; another flight too', async () => {
      const rebook = (token: string | undefined, body: unknown) =>
        bff('POST', '/api/reservations/rebook', { token, body });
      assert.equal(
        (
          await bff('POST', '/api/reservations', {
            token: tokens.family,
            body: { flight_id: AA2532_MAY17, seat_num: '20A' },
          })
        ).status,
        201,
      );
      const moved = await rebook(tokens.family, { flight_id: AA2532_MAY17, seat_num: '20A', new_seat_num: '20B' });
      assert.equal(moved.status, 200);
      assert.deepEqual(moved.body, {
        status: 'success',
        flight_id: AA2532_MAY17,
        seat_num: '20B',
        customer_id: 'family',
      });
      let body = await chart('AA2532', '2027-05-17');
      assert.deepEqual([seat(body, '20A').available, seat(body, '20B').available], [true, false]);

      // 12C is flyer's: family cannot move onto it, and keeps 20B.
      const onto = await rebook(tokens.family, { flight_id: AA2532_MAY17, seat_num: '20B', new_seat_num: '12C' });
      assert.equal(onto.status, 409);
      assert.equal(onto.body.error.code, 'SEAT_TAKEN');
      const reservations = await reservationsApi('GET', `/reservations?flight_id=${AA2532_MAY17}`);
      assert.equal(reservations.body['20B'], 'family');
      assert.equal(reservations.body['12C'], 'flyer');

      const notTheirs = await rebook(tokens.family, { flight_id: AA2532_MAY17, seat_num: '12C', new_seat_num: '21A' });
      assert.equal(notTheirs.status, 403);
      const notHeld = await rebook(tokens.family, { flight_id: AA2532_MAY17, seat_num: '30F', new_seat_num: '21A' });
      assert.equal(notHeld.status, 404);
      const badSeat = await rebook(tokens.family, { flight_id: AA2532_MAY17, seat_num: '20B', new_seat_num: '40A' });
      assert.equal(badSeat.status, 400);
      assert.deepEqual(
        badSeat.body.error.details.fields.map((f: Body) => f.path),
        ['new_seat_num'],
      );
      const missing = await rebook(tokens.family, { flight_id: AA2532_MAY17, seat_num: '20B' });
      assert.equal(missing.status, 400);

      const nextDay = await rebook(tokens.family, {
        flight_id: AA2532_MAY17,
        seat_num: '20B',
        new_flight_id: AA2532_MAY18,
        new_seat_num: '9A',
      });
      assert.equal(nextDay.status, 200);
      body = await chart('AA2532', '2027-05-17');
      assert.equal(seat(body, '20B').available, true);
      assert.equal(seat(await chart('AA2532', '2027-05-18'), '9A').available, false);
    });

    test('release: only by the holder (403 for another), then the seat is free (and a 404 after)', async () => {
      const release = (token: string, body: unknown) => bff('DELETE', '/api/reservations', { token, body });
      const others = await release(tokens.family, { flight_id: AA2532_MAY17, seat_num: '12C' });
      assert.equal(others.status, 403);
      assert.equal(seat(await chart('AA2532', '2027-05-17'), '12C').available, false);
      const own = await release(tokens.flyer, { flight_id: AA2532_MAY17, seat_num: '12C' });
      assert.equal(own.status, 204);
      assert.equal(seat(await chart('AA2532', '2027-05-17'), '12C').available, true);
      assert.equal((await release(tokens.flyer, { flight_id: AA2532_MAY17, seat_num: '12C' })).status, 404);
      assert.equal((await release(tokens.flyer, { flight_id: AA2532_MAY17, seat_num: 'C12' })).status, 400);
      const byAgent = await release(tokens.agent, { flight_id: AA2532_MAY17, seat_num: '13C', customer_id: 'family' });
      assert.equal(byAgent.status, 204);
    });

    test('the race: 100 customers reserve one seat at once; exactly one wins and the chart shows the winner', async () => {
      const attempts = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          bff('POST', '/api/reservations', {
            token: tokens.agent,
            body: { flight_id: UA5678_MAY17, seat_num: '8B', customer_id: `racer-${i}` },
          }),
        ),
      );
      const won = attempts.filter((a) => a.status === 201);
      assert.equal(won.length, 1, `statuses: ${attempts.map((a) => a.status).join(',')}`);
      assert.equal(attempts.filter((a) => a.status === 409).length, 99);
      assert.equal(seat(await chart('UA5678', '2027-05-17'), '8B').available, false);
      const holders = await reservationsApi('GET', `/reservations?flight_id=${UA5678_MAY17}`);
      assert.deepEqual(holders.body, { '8B': won[0]!.body.customer_id });
    });

    test('search for a family: a flight with fewer free seats than passengers is not offered', async () => {
      // UA5678 (an Embraer 175, 68 seats) has 8B taken by the race; taking 59 more leaves 8.
      const body = await chart('UA5678', '2027-05-17');
      const free = seatsOf(body)
        .filter((s) => s.available)
        .map((s) => s.number);
      assert.equal(free.length, 67);
      for (let i = 0; i < 59; i += 10) {
        const answers = await Promise.all(
          free.slice(i, Math.min(i + 10, 59)).map((seatNum) =>
            bff('POST', '/api/reservations', {
              token: tokens.agent,
              body: { flight_id: UA5678_MAY17, seat_num: seatNum, customer_id: `family-of-${seatNum}` },
            }),
          ),
        );
        assert.ok(answers.every((a) => a.status === 201));
      }
      const search = (passengers: number) =>
        bff('GET', `/api/flights/search?from=ORD&to=DEN&date=2027-05-17&passengers=${passengers}`, {
          token: tokens.family,
        });
      const eight = await search(8);
      assert.deepEqual(
        eight.body.map((f: Body) => [f.flight_no, f.free_seats]),
        [['UA5678', 8]],
      );
      assert.deepEqual((await search(9)).body, []);
    });

    test('the rebook race: 50 customers move onto one seat at once; one wins, nobody ends with two seats or none', async () => {
      const seats = Array.from({ length: 50 }, (_, i) => `${12 + Math.floor(i / 6)}${'ABCDEF'[i % 6]}`);
      for (const [i, seatNum] of seats.entries()) {
        const answer = await bff('POST', '/api/reservations', {
          token: tokens.agent,
          body: { flight_id: DL401_MAY17, seat_num: seatNum, customer_id: `mover-${i}` },
        });
        assert.equal(answer.status, 201);
      }
      const attempts = await Promise.all(
        seats.map((seatNum, i) =>
          bff('POST', '/api/reservations/rebook', {
            token: tokens.agent,
            body: { flight_id: DL401_MAY17, seat_num: seatNum, new_seat_num: '1A', customer_id: `mover-${i}` },
          }),
        ),
      );
      assert.equal(attempts.filter((a) => a.status === 200).length, 1);
      assert.equal(attempts.filter((a) => a.status === 409).length, 49);
      const holders = (await reservationsApi('GET', `/reservations?flight_id=${DL401_MAY17}`)).body as Record<
        string,
        string
      >;
      const customers = Object.values(holders);
      assert.equal(customers.length, 50);
      assert.equal(new Set(customers).size, 50, 'no customer holds two seats');
      const winner = attempts.findIndex((a) => a.status === 200);
      assert.equal(holders['1A'], `mover-${winner}`);
      assert.equal(holders[seats[winner]!], undefined, 'the winner’s old seat is free');
    });

    test('the flights service’s own API: find a flight, its seat map, 400 {errors} and 404', async () => {
      const found = await flightsApi('GET', '/flights?flight_no=AA2532&departure_date_time=2027-05-17T13:20');
      assert.deepEqual([found.status, found.body.flight_id], [200, AA2532_MAY17]);
      const bad = await flightsApi('GET', '/flights?flight_no=AA-2532&departure_date_time=2027-05-17%2013:20');
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.body.errors.map((e: Body) => e.field).sort(), ['departure_date_time', 'flight_no']);
      const missing = await flightsApi('GET', '/flights');
      assert.equal(missing.status, 400);
      const impossible = await flightsApi('GET', '/flights?flight_no=AA2532&departure_date_time=2027-05-17T25:20');
      assert.equal(impossible.status, 400);
      const none = await flightsApi('GET', '/flights?flight_no=AA2532&departure_date_time=2027-05-17T13:21');
      assert.equal(none.status, 404);
      const map = await flightsApi('GET', '/flights/DL401/seat_map');
      assert.deepEqual([map.status, map.body.aircraft], [200, 'Boeing 737-800']);
      assert.equal((await flightsApi('GET', '/flights/ZZ1/seat_map')).status, 404);
      assert.equal((await flightsApi('GET', '/flights/1ZZ/seat_map')).status, 400);
      assert.deepEqual((await flightsApi('GET', '/ping')).body, { status: 'pass' });
      const health = await flightsApi('GET', '/health');
      assert.equal(health.status, 200);
      const check = health.body.checks['database:responseTime'][0];
      assert.deepEqual([check.componentId, typeof check.metricValue], [system.databaseKind, 'number']);
      // Cached for 10 s: a second look within them is the same check, not another round trip.
      const again = await flightsApi('GET', '/health');
      assert.equal(again.body.checks['database:responseTime'][0].time, check.time);
      const document = await fetch(`${system.flightsUrl}/openapi.json`);
      assert.equal(((await document.json()) as Body).openapi, '3.1.0');
    });

    test('the reservations service’s own API: PUT, 403 on a double-book, release only by the holder', async () => {
      const body = { flight_id: AA2532_MAY18, customer_id: 'book-reader', seat_num: '30A' };
      const put = await reservationsApi('PUT', '/reservations', { body });
      assert.deepEqual([put.status, put.body], [200, { status: 'success' }]);
      const again = await reservationsApi('PUT', '/reservations', { body: { ...body, customer_id: 'someone' } });
      assert.equal(again.status, 403);
      assert.equal(again.body.description, 'Seat already reserved. Cannot double-book');
      const listed = await reservationsApi('GET', `/reservations?flight_id=${AA2532_MAY18}`);
      assert.equal(listed.body['30A'], 'book-reader');
      const stolen = await reservationsApi('DELETE', '/reservations', { body: { ...body, customer_id: 'someone' } });
      assert.equal(stolen.status, 403);
      const released = await reservationsApi('DELETE', '/reservations', { body });
      assert.equal(released.status, 200);
      const bad = await reservationsApi('PUT', '/reservations', { body: { flight_id: 'x', seat_num: 'A1' } });
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.body.errors.map((e: Body) => e.field).sort(), ['customer_id', 'flight_id', 'seat_num']);
      assert.equal((await reservationsApi('GET', '/reservations')).status, 400);
      assert.equal((await reservationsApi('PUT', '/reservations', { rawBody: 'not json' })).status, 400);
      const health = await reservationsApi('GET', '/health');
      assert.deepEqual([health.status, health.body.checks['redis:responseTime'][0].componentId], [200, 'redis']);
      const document = await fetch(`${system.reservationsUrl}/openapi.json`);
      assert.equal(((await document.json()) as Body).info.title, 'Reservations service');
      const bffDocument = await fetch(`${system.url}/api/openapi.json`);
      assert.equal(((await bffDocument.json()) as Body).info.title, 'Flight reservations (BFF)');
    });
  });
}
