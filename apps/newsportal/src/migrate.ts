import { loadConfig, selectServices } from '@chassis/core';
import { type MigrationReport, migrateOnly } from '@chassis/data';
import { newsportalServices } from './services.ts';

/**
 * `MIGRATE_ONLY=true`: brings the schema of every service in `SERVICES` (all by default) up to date in
 * `DATABASE_URL` and returns, starting nothing else (the Kubernetes migration Job).
 */
export async function migrateNewsportal(
  env: Record<string, string | undefined> = process.env,
  log?: (line: string) => void,
): Promise<MigrationReport[]> {
  // Defining the services does no I/O: Redis is only connected to when users starts.
  const all = newsportalServices({ users: { url: 'redis://migrations.only', keyPrefix: '' } });
  return migrateOnly(
    env.DATABASE_URL ?? 'pglite://.data/newsportal',
    selectServices(all, loadConfig(env).SERVICES),
    log,
  );
}
