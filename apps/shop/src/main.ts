import { migrateShop } from './migrate.ts';
import { startShop } from './system.ts';

/**
 * `npm run start:shop`: the Shop with every service in this one process (memory transport, PGlite in
 * `.data/shop`) and its gateway on http://127.0.0.1:8080, serving until Ctrl-C. `CHASSIS_TRANSPORT`,
 * `SERVICES`, `DATABASE_URL` and `PORT` spread the same services over processes, brokers and databases.
 * `MIGRATE_ONLY=true` migrates the databases of the services in `SERVICES` and exits.
 */
if (process.env.MIGRATE_ONLY === 'true') {
  // The migration Job of deploy/kubernetes/shop: migrate, say what was applied, exit.
  await migrateShop(process.env, console.log);
  process.exit(0);
}

const shop = await startShop({ handleSignals: true });
const { node, url } = shop;
const say = (line: string) => console.log(line);

// The Node version is printed because the project brings its own (node_modules/.bin/node).
say(
  `Shop on Node ${process.version}, the ${node.transport.kind} transport: ${node.services.map((s) => s.name).join(', ')}`,
);
if (url) say(`  API      ${url}/api/v1   (OpenAPI ${url}/openapi.json, docs ${url}/docs)`);
if (shop.grpcPort !== undefined)
  say(`  gRPC     127.0.0.1:${shop.grpcPort}   (UserService.GetUser, services/users/users.proto)`);
if (node.opsPort !== undefined) {
  const ops = `http://127.0.0.1:${node.opsPort}`;
  say(`  ops      ${ops}/health/ready, ${ops}/metrics`);
}
if (url) {
  say('Try it (the seed admin is admin / admin-password):');
  say(`  curl -s '${url}/api/v1/products?q=desk'`);
  say(
    `  TOKEN=$(curl -s -X POST ${url}/api/v1/login -H 'content-type: application/json' -d '{"username":"admin","password":"admin-password"}' | sed 's/.*"token":"\\([^"]*\\)".*/\\1/')`,
  );
  say(
    `  curl -s -X POST ${url}/api/v1/orders -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"items":[{"productId":"10000000-0000-4000-8000-000000000002","quantity":2}]}'`,
  );
  say(`  curl -s ${url}/mobile/products`);
  say('Serving until Ctrl-C (SIGINT/SIGTERM drain the node gracefully).');
}
