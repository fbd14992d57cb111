import { startFlights } from './system.ts';

/**
 * `npm run start:flights`: flight reservations in this one process — the flights service (the local
 * MariaDB, as in the book; `DATABASE_URL` for another, e.g. `pglite://.data/flights` for no server), the
 * reservations service (the local Redis, `REDIS_URL`) and the
 * BFF on http://127.0.0.1:8080 — over the memory transport, serving until Ctrl-C. `SERVICES`,
 * `CHASSIS_TRANSPORT` and the ports spread the same parts over processes (src/distributed.ts).
 */
const env = { ...process.env, DATABASE_URL: process.env.DATABASE_URL || 'mysql://root@127.0.0.1:3306/' };
const system = await startFlights({ env, handleSignals: true });
const say = (line: string) => console.log(line);
const { node, url } = system;
const hosted = [...node.services.map((s) => s.name), ...(url ? ['bff'] : [])];
say(`Flight reservations on Node ${process.version}, the ${node.transport.kind} transport: ${hosted.join(', ')}`);
if (url) say(`  BFF           ${url}/api   (OpenAPI ${url}/api/openapi.json)`);
if (system.flightsUrl)
  say(`  flights       ${system.flightsUrl}   (${system.databaseUrl}; /ping, /health, /openapi.json)`);
if (system.reservationsUrl) say(`  reservations  ${system.reservationsUrl}   (Redis; /ping, /health, /openapi.json)`);
if (url) {
  say('Try it (seed users: flyer, family, agent; passwords <name>-password):');
  say(
    `  TOKEN=$(curl -s -X POST ${url}/api/auth/token -H 'content-type: application/json' -d '{"username":"flyer","password":"flyer-password"}' | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')`,
  );
  say(
    `  curl -s "${url}/api/flights/search?from=LAX&to=DCA&date=2027-05-17&passengers=2" -H "authorization: Bearer $TOKEN"`,
  );
  say(
    `  curl -s -X POST ${url}/api/reservations -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"flight_id":"5c1e5c5e-8f2b-4b0e-9d5a-2a5322027517","seat_num":"12C"}'`,
  );
  say(`  curl -s "${url}/api/flights/AA2532/seats?date=2027-05-17" -H "authorization: Bearer $TOKEN"`);
}
say('Serving until Ctrl-C (SIGINT/SIGTERM drain the node gracefully).');
