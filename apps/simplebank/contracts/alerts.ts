import { action } from '@chassis/core';
import { z } from 'zod';

const Strings = z.record(z.string(), z.string());

/** One alert of an Alertmanager (webhook v4) or Grafana (unified alerting) payload; other keys pass through. */
export const WebhookAlert = z.looseObject({
  status: z.enum(['firing', 'resolved']),
  labels: z.object({ alertname: z.string().min(1) }).catchall(z.string()),
  annotations: Strings.default({}),
  startsAt: z.string().min(1),
  endsAt: z.string().optional(),
  generatorURL: z.string().optional(),
  fingerprint: z.string().optional(),
});

/**
 * What an alert webhook posts, either shape:
 * - Prometheus Alertmanager, webhook version 4: `{version: "4", status, receiver, groupLabels, commonLabels,
 *   commonAnnotations, externalURL, alerts: [{status, labels: {alertname, …}, annotations, startsAt, endsAt,
 *   generatorURL, fingerprint}], …}`;
 * - Grafana: unified alerting (the same `alerts`, plus `title`, `state`, `message`, `orgId`, …) or the legacy
 *   webhook `{title, ruleName, state: "alerting" | "ok" | …, message, tags, evalMatches, …}`.
 * Keys not named here pass through; at least one alert, or Grafana's `title` (or `ruleName`) with `state`.
 */
export const AlertWebhook = z
  .looseObject({
    version: z.string().optional(),
    status: z.string().optional(),
    receiver: z.string().optional(),
    alerts: z.array(WebhookAlert).max(1000).optional(),
    title: z.string().optional(),
    ruleName: z.string().optional(),
    state: z.string().optional(),
    message: z.string().optional(),
    tags: Strings.optional(),
  })
  .superRefine((payload, ctx) => {
    if (payload.alerts && payload.alerts.length > 0) return;
    if (payload.title === undefined && payload.ruleName === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['alerts'],
        message: 'an alert webhook has at least one alert (Alertmanager, Grafana), or a title and state (Grafana)',
      });
    } else if (payload.state === undefined) {
      ctx.addIssue({ code: 'custom', path: ['state'], message: 'a Grafana alert has a state, e.g. "alerting"' });
    }
  });

export const AlertSource = z.enum(['alertmanager', 'grafana']);

/** `POST /alerts` (public: Alertmanager and Grafana send no bearer token): stores and logs each alert. */
export const receiveAlerts = action('alerts.receiveAlerts', {
  description:
    'Receives an Alertmanager (webhook v4) or Grafana alert webhook: one row per alert, each logged at warn.',
  input: AlertWebhook,
  output: z.object({ received: z.number().int().nonnegative() }),
  idempotent: false,
});

export const ReceivedAlert = z.object({
  id: z.number().int(),
  source: AlertSource,
  alertname: z.string(),
  /** `firing` or `resolved` (a Grafana legacy state other than `alerting` or `ok` is kept as it came). */
  status: z.string(),
  labels: Strings,
  annotations: Strings,
  startsAt: z.string().nullable(),
  endsAt: z.string().nullable(),
  fingerprint: z.string().nullable(),
  receivedAt: z.string(),
});

/** `GET /alerts` (admins): the alerts received, newest first. */
export const listAlerts = action('alerts.listAlerts', {
  input: z.object({
    page: z.number().int().min(1).default(1),
    size: z.number().int().min(1).max(100).default(20),
  }),
  output: z.object({ page: z.number(), size: z.number(), alerts: z.array(ReceivedAlert) }),
  idempotent: true,
});
