import { defineService, handle, requireRole } from '@chassis/core';
import { database } from '@chassis/data';
import type { Generated, Insertable } from 'kysely';
import type { z } from 'zod';
import { type AlertWebhook, listAlerts, receiveAlerts } from '../../contracts/alerts.ts';

type Source = 'alertmanager' | 'grafana';

interface AlertsTables {
  alerts: {
    id: Generated<number>;
    source: Source;
    alertname: string;
    status: string;
    /** jsonb: written as JSON text, read back as an object (or text, on some drivers). */
    labels: string | Record<string, string>;
    annotations: string | Record<string, string>;
    starts_at: string | null;
    ends_at: string | null;
    fingerprint: string | null;
    received_at: Generated<Date>;
  };
}

type NewAlert = Insertable<AlertsTables['alerts']>;

/**
 * Alerts: the webhook receiver of Prometheus Alertmanager and Grafana (`POST /alerts`, public: neither
 * sends a bearer token). Each alert is stored and logged at warn; admins list them (`GET /alerts`).
 */
export function alertsService() {
  return defineService({
    name: 'alerts',
    version: '0.1.0',
    migrations: new URL('./migrations/', import.meta.url),
    actions: [
      handle(receiveAlerts, async (payload, ctx) => {
        const rows = alertsOf(payload);
        const db = await database<AlertsTables>(ctx);
        if (rows.length > 0) await db.insertInto('alerts').values(rows).execute();
        for (const row of rows) {
          ctx.log.warn(
            { source: row.source, alertname: row.alertname, status: row.status, labels: json(row.labels) },
            `alert ${row.alertname} ${row.status} (from ${row.source})`,
          );
        }
        return { received: rows.length };
      }),
      handle(listAlerts, async ({ page, size }, ctx) => {
        requireRole(ctx.user, 'admin');
        const db = await database<AlertsTables>(ctx);
        const rows = await db
          .selectFrom('alerts')
          .selectAll()
          .orderBy('received_at', 'desc')
          .orderBy('id', 'desc')
          .limit(size)
          .offset((page - 1) * size)
          .execute();
        const alerts = rows.map((row) => ({
          id: Number(row.id),
          source: row.source,
          alertname: row.alertname,
          status: row.status,
          labels: json(row.labels),
          annotations: json(row.annotations),
          startsAt: row.starts_at,
          endsAt: row.ends_at,
          fingerprint: row.fingerprint,
          receivedAt: new Date(row.received_at).toISOString(),
        }));
        return { page, size, alerts };
      }),
    ],
  });
}

/** The rows of a webhook: one per alert, or one for a Grafana legacy payload, which is one alert. */
function alertsOf(payload: z.output<typeof AlertWebhook>): NewAlert[] {
  // Alertmanager's payload has none of the keys only Grafana adds.
  const source: Source =
    payload.title !== undefined || payload.state !== undefined || payload.ruleName !== undefined || 'orgId' in payload
      ? 'grafana'
      : 'alertmanager';
  if (payload.alerts && payload.alerts.length > 0) {
    return payload.alerts.map((alert) => ({
      source,
      alertname: alert.labels.alertname,
      status: alert.status,
      labels: JSON.stringify(alert.labels),
      annotations: JSON.stringify(alert.annotations),
      starts_at: alert.startsAt,
      ends_at: alert.endsAt ?? null,
      fingerprint: alert.fingerprint ?? null,
    }));
  }
  // Grafana's legacy webhook: the rule is the alert; `alerting` is firing, `ok` resolved.
  const alertname = payload.ruleName ?? payload.title ?? 'unnamed';
  const state = payload.state ?? 'alerting';
  const annotations: Record<string, string> = {};
  if (payload.title !== undefined) annotations.title = payload.title;
  if (payload.message !== undefined) annotations.message = payload.message;
  return [
    {
      source,
      alertname,
      status: state === 'alerting' ? 'firing' : state === 'ok' ? 'resolved' : state,
      labels: JSON.stringify({ ...payload.tags, alertname }),
      annotations: JSON.stringify(annotations),
      starts_at: null,
      ends_at: null,
      fingerprint: null,
    },
  ];
}

function json(value: string | Record<string, string>): Record<string, string> {
  return typeof value === 'string' ? JSON.parse(value) : value;
}
