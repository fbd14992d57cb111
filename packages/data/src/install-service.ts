import type { ServiceDefinition } from '@chassis/core';
import type { Database } from './database.ts';
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
