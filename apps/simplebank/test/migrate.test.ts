import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Database, sql } from '@chassis/data';
import { postgresTarget, typescriptArgs } from '@chassis/testing';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
// PostgreSQL, as in the cluster (and seconds faster to start than PGlite, three times over here).
const postgres = await postgresTarget();

/** Runs `node main.ts` with `MIGRATE_ONLY=true` as the Kubernetes migration Job does; its output and exit code. */
async function runMigrateOnly(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [...typescriptArgs(), MAIN], {
    env: { ...process.env, MIGRATE_ONLY: 'true', LOG_LEVEL: 'silent', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

/**
 * The migration Job's mode: the entry migrates the schemas of the services in `SERVICES` and exits,
 * starting no transport and no gateway — with no broker configured and none reachable, it still works.
 */
describe('SimpleBank MIGRATE_ONLY: migrates the services in SERVICES, then exits', { skip: postgres.skip }, () => {
  let databaseUrl: string;
  before(async () => {
    databaseUrl = await postgres.newDatabase();
  });
  after(async () => {
    await postgres.cleanup();
  });

  it('applies the migrations and the chassis tables once, and finds them applied the second time', async () => {
    const env = {
      DATABASE_URL: databaseUrl,
      SERVICES: 'orders,fees',
      // A broker that is not there: migrating must not need one.
      CHASSIS_TRANSPORT: 'nats://127.0.0.1:1',
      PORT: '1',
    };
    const first = await runMigrateOnly(env);
    assert.equal(first.code, 0, first.output);
    assert.match(first.output, /orders: applied 1 migration\(s\), 0 already/);
    assert.match(first.output, /fees: applied 1 migration\(s\), 0 already/);
    assert.doesNotMatch(first.output, /customer-orders|SimpleBank on Node/);

    const second = await runMigrateOnly(env);
    assert.equal(second.code, 0, second.output);
    assert.match(second.output, /orders: applied 0 migration\(s\), 1 already/);

    const db = await Database.open(databaseUrl);
    try {
      const tables = await sql<{ schema: string; name: string }>`
        select table_schema as schema, table_name as name from information_schema.tables
        where table_schema in ('orders', 'fees', 'customer-orders') order by 1, 2`.execute(db.kysely);
      const names = tables.rows.map((row) => `${row.schema}.${row.name}`);
      for (const expected of [
        'orders.chassis_migrations',
        'orders.chassis_outbox',
        'orders.chassis_inbox',
        'fees.chassis_migrations',
        'fees.fees',
      ]) {
        assert.ok(names.includes(expected), `${expected} in ${names.join(', ')}`);
      }
      assert.ok(!names.some((name) => name.startsWith('customer-orders.')), 'a service not in SERVICES is left alone');
    } finally {
      await db.close();
    }
  });

  it('refuses a SERVICES entry SimpleBank does not have', async () => {
    const result = await runMigrateOnly({ DATABASE_URL: databaseUrl, SERVICES: 'orders,nonesuch' });
    assert.notEqual(result.code, 0);
    assert.match(result.output, /nonesuch/);
  });
});
