import { migrateNewsportal } from './migrate.ts';
import { startNewsportal } from './system.ts';

/**
 * `npm run start:newsportal`: the News portal with every service in this one process (memory transport,
 * PGlite in `.data/newsportal`, the Redis at `REDIS_URL`, default redis://127.0.0.1:6379) and its
 * gateway on http://127.0.0.1:8080 (`PORT`), serving until Ctrl-C. `CHASSIS_TRANSPORT`, `SERVICES`,
 * `DATABASE_URL` spread the same services over processes, brokers and databases (see distributed.ts).
 */
if (process.env.MIGRATE_ONLY === 'true') {
  // The migration Job of deploy/kubernetes: migrate, say what was applied, exit.
  await migrateNewsportal(process.env, console.log);
  process.exit(0);
}

const portal = await startNewsportal({ handleSignals: true });
const { node, url } = portal;
const say = (line: string) => console.log(line);

// The Node version is printed because the project brings its own (node_modules/.bin/node).
say(
  `News portal on Node ${process.version}, the ${node.transport.kind} transport: ${node.services.map((s) => s.name).join(', ')}`,
);
if (url) say(`  API      ${url}   (OpenAPI ${url}/openapi.json, docs ${url}/docs)`);
if (portal.grpcPort !== undefined) {
  say(`  gRPC     127.0.0.1:${portal.grpcPort}   (GetUserData.GetUser, services/users/user_data.proto)`);
}
if (node.opsPort !== undefined) {
  const ops = `http://127.0.0.1:${node.opsPort}`;
  say(`  ops      ${ops}/health/ready, ${ops}/metrics`);
}
if (url) {
  say('Try it:');
  say(
    `  curl -s -X POST ${url}/v1/users -H 'content-type: application/json' -d '{"name":"Robot","email":"robot@example.com","password":"robot-password"}'`,
  );
  say(
    `  curl -s -X POST ${url}/v1/news/sports -H 'content-type: application/json' -d '{"title":"Cup final","content":"3-2","author":"Desk","tags":["football"]}'`,
  );
  say(`  curl -s ${url}/v1/news/sports/1 -H 'cookie: user_id=1'`);
  say(`  curl -s ${url}/v1/recommendation/user/1`);
  say(`  curl -s ${url}/v1/news/all/1/10`);
}
say('Serving until Ctrl-C (SIGINT/SIGTERM drain the node gracefully).');
