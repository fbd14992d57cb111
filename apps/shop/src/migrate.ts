import { loadConfig, selectServices } from '@chassis/core';
import { type MigrationReport, migrateOnly } from '@chassis/data';
import { shopServices } from './services.ts';

/**
 * `MIGRATE_ONLY=true`: brings the schema of every service in `SERVICES` (all by default) up to date in
 * `DATABASE_URL` and returns, starting nothing else (the Kubernetes migration Job).
 */
export async function migrateShop(
  env: Record<string, string | undefined> = process.env,
  log?: (line: string) => void,
): Promise<MigrationReport[]> {
  const services = selectServices(shopServices({ secret: 'migrations only' }), loadConfig(env).SERVICES);
  return migrateOnly(env.DATABASE_URL ?? 'pglite://.data/shop', services, log);
}
