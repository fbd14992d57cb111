import { flushCompileCache } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { withProcessSettings } from './process-settings.ts';

// Before anything is loaded: this may start the process again, with its memory settings.
withProcessSettings();
if (process.env.SIMPLEBANK_COMPILE_ONLY === 'true') {
  // The launcher's warm-up (see `warmCompileCache`): every module a process of the bank loads, compiled
  // into Node's compile cache, and nothing started.
  await Promise.all([
    import('./migrate.ts'),
    import('./system.ts').then(({ loadGateway }) => loadGateway()),
    import('@chassis/core/nats'),
    import('../exchange-simulator/simulator.ts'),
  ]);
  flushCompileCache();
  process.exit(0);
}
const [{ migrateSimplebank }, { startSimplebank }] = await Promise.all([import('./migrate.ts'), import('./system.ts')]);

/**
 * `npm start`: SimpleBank with every service in this one process (memory transport, PGlite in
 * `.data/simplebank`) and its gateway on http://127.0.0.1:8080, serving until Ctrl-C. `-- --demo` places
 * a few orders through the gateway, prints what happened and exits. `CHASSIS_TRANSPORT`, `SERVICES`,
 * `DATABASE_URL` and `PORT` spread the same services over processes, brokers and databases. `MIGRATE_ONLY=true`
 * migrates the databases of the services in `SERVICES` and exits.
 */

if (process.env.MIGRATE_ONLY === 'true') {
  // The migration Job of deploy/kubernetes: migrate, say what was applied, exit.
  await migrateSimplebank(process.env, console.log);
  process.exit(0);
}

const demo = process.argv.includes('--demo');
const bank = await startSimplebank({ handleSignals: !demo });
// What started compiled now, not only at exit (a process killed never writes it): the next start finds it.
flushCompileCache();
const say = (line: string) => console.log(line);
const { node, url } = bank;

// The Node version is printed because the project brings its own (node_modules/.bin/node) and a start
// from outside npm would silently use whatever `node` is first on PATH instead.
say(
  `SimpleBank on Node ${process.version}, the ${node.transport.kind} transport: ${node.services.map((s) => s.name).join(', ')}`,
);
if (url) {
  say(`  API      ${url}   (OpenAPI ${url}/openapi.json, docs ${url}/docs)`);
}
if (node.opsPort !== undefined) {
  const ops = `http://127.0.0.1:${node.opsPort}`;
  say(`  ops      ${ops}/health/ready, ${ops}/metrics`);
}

// The walk-through is a client of the gateway as the tests are, with their helper: @chassis/testing is a
// devDependency, there in the checkout `npm start -- --demo` runs from; the production image, which never
// runs the walk-through, has none, so it is loaded only for it.
const request = async (method: string, path: string, body?: unknown, token?: string) =>
  (await import('@chassis/testing')).requestJson(url ?? '', method, path, body, token);

function describe(answer: { status: number; body: Record<string, unknown> }): string {
  const error = answer.body.error as { code: string; message: string } | undefined;
  return error ? `${answer.status} ${error.code}: ${error.message}` : `${answer.status} ${JSON.stringify(answer.body)}`;
}

async function walkThrough(): Promise<void> {
  const login = await request('POST', '/auth/token', { username: 'alice', password: 'alice-password' });
  say(`  POST /auth/token alice → ${login.status}`);
  const token = String(login.body.access_token);
  const sold = await request('POST', '/shares/sell', { accountId: '101', symbol: 'BHP', quantity: 10 }, token);
  say(`  POST /shares/sell 10 BHP from 101 → ${describe(sold)}`);
  say(
    `  POST /shares/sell 5000 BHP → ${describe(await request('POST', '/shares/sell', { accountId: '101', symbol: 'BHP', quantity: 5000 }, token))}`,
  );
  say(
    `  POST /shares/sell from Bob's 102 → ${describe(await request('POST', '/shares/sell', { accountId: '102', symbol: 'BHP', quantity: 1 }, token))}`,
  );
  say(
    `  POST /shares/sell -3 "bhp" → ${describe(await request('POST', '/shares/sell', { accountId: '101', symbol: 'bhp', quantity: -3 }, token))}`,
  );
  const orderId = sold.body.orderId;
  if (typeof orderId === 'string') {
    for (let i = 0; i < 50; i++) {
      const order = await request('GET', `/orders/${orderId}`, undefined, token);
      if (['completed', 'failed'].includes(String(order.body.status))) {
        const history = (order.body.history as { status: string }[]).map((h) => h.status).join(' → ');
        say(`  GET /orders/${orderId} → ${history} (placed on the exchange and filled)`);
        break;
      }
      await sleep(20);
    }
  }
}

if (demo && url) {
  await walkThrough();
  await bank.stop();
} else if (url) {
  say('Try it:');
  say(
    `  TOKEN=$(curl -s -X POST ${url}/auth/token -H 'content-type: application/json' -d '{"username":"alice","password":"alice-password"}' | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')`,
  );
  say(
    `  curl -s -X POST ${url}/shares/sell -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"accountId":"101","symbol":"BHP","quantity":10}'`,
  );
  say('Serving until Ctrl-C (SIGINT/SIGTERM drain the node gracefully).');
}
