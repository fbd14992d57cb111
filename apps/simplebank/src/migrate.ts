import { loadConfig, selectServices } from '@chassis/core';
import { type MigrationReport, migrateOnly } from '@chassis/data';
import { simplebankServices } from './services.ts';

/**
 * `MIGRATE_ONLY=true`: brings the schema of every service in `SERVICES` (all by default) up to date in
 * `DATABASE_URL` and returns, starting nothing else (the Kubernetes migration Job).
 */
export async function migrateSimplebank(
  env: Record<string, string | undefined> = process.env,
  log?: (line: string) => void,
): Promise<MigrationReport[]> {
  // Defining the services does no I/O; the secret and the exchange only reach them when they start.
  const all = simplebankServices({ secret: 'migrations only', exchangeUrl: 'http://migrations.only' });
  return migrateOnly(
    env.DATABASE_URL ?? 'pglite://.data/simplebank',
    selectServices(all, loadConfig(env).SERVICES),
    log,
  );
}
