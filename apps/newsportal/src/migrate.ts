import { loadConfig } from '@chassis/core';
import { Database, installServiceSchema, type MigrationReport } from '@chassis/data';
import { newsportalServices } from './services.ts';

/**
 * `MIGRATE_ONLY=true`: brings the schema of every service in `SERVICES` (all by default) up to date in
 * `DATABASE_URL` and returns, starting nothing else. The Kubernetes migration Job runs the image this way
 * before a rollout; nodes migrate at start anyway (under the same per-service lock).
 */
export async function migrateNewsportal(
  env: Record<string, string | undefined> = process.env,
): Promise<MigrationReport[]> {
  const config = loadConfig(env);
  const url = env.DATABASE_URL ?? 'pglite://.data/newsportal';
  // Defining the services does no I/O: Redis is only connected to when users starts.
  const services = newsportalServices({ users: { url: 'redis://migrations.only', keyPrefix: '' } }).filter(
    (service) => config.SERVICES.length === 0 || config.SERVICES.includes(service.name),
  );
  const unknown = config.SERVICES.filter((name) => !services.some((service) => service.name === name));
  if (unknown.length > 0)
    throw new Error(`SERVICES names services the News portal does not have: ${unknown.join(', ')}`);
  const db = await Database.open(url);
  try {
    const reports: MigrationReport[] = [];
    for (const service of services) {
      const report = await installServiceSchema(db, service);
      if (report) reports.push(report);
    }
    return reports;
  } finally {
    await db.close();
  }
}
