import type { ServiceDefinition } from '@chassis/core';
import { Database } from './database.ts';
import { installInbox } from './inbox.ts';
import { installLeases } from './leases.ts';
import { type MigrationReport, migrate } from './migrations.ts';
import { installOutbox } from './outbox.ts';

/**
 * Brings one service's schema up to date: its migrations, then the chassis's own tables (outbox, inbox,
 * and leases when a schedule runs once per service). Idempotent, under the service's advisory lock, so
 * a node starting and a migration Job may do it at the same time. A service without migrations owns no
 * schema: nothing is done and `undefined` is returned.
 */
export async function installServiceSchema(
  db: Database,
  service: ServiceDefinition,
): Promise<MigrationReport | undefined> {
  if (service.migrations === undefined) return undefined;
  const report = await migrate(db, { service: service.name, folder: service.migrations });
  await installOutbox(db, service.name);
  await installInbox(db, service.name);
  if (service.schedules.some((schedule) => schedule.options.scope !== 'instance')) {
    await installLeases(db, service.name);
  }
  return report;
}

/**
 * What an app's `MIGRATE_ONLY=true` does — the migration Job of its Kubernetes manifests runs the image
 * this way before a rollout: brings the schema of each of `services` up to date in the database at
 * `url`, says what was applied through `log`, closes the database, and returns the reports. Nothing
 * else starts (no transport, no gateway, no ops port). Nodes would migrate at start anyway, under the
 * same per-service lock; this only takes the wait out of the rollout.
 */
export async function migrateOnly(
  url: string,
  services: readonly ServiceDefinition[],
  log: (line: string) => void = () => {},
): Promise<MigrationReport[]> {
  const db = await Database.open(url);
  try {
    const reports: MigrationReport[] = [];
    for (const service of services) {
      const report = await installServiceSchema(db, service);
      if (!report) continue;
      reports.push(report);
      log(`${report.service}: applied ${report.applied.length} migration(s), ${report.alreadyApplied.length} already`);
    }
    return reports;
  } finally {
    await db.close();
  }
}
