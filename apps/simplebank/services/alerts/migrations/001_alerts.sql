-- Alerts received from Prometheus Alertmanager and Grafana webhooks: one row per alert per delivery.
create table alerts (
  id bigint generated always as identity primary key,
  source text not null check (source in ('alertmanager', 'grafana')),
  alertname text not null,
  status text not null,
  labels jsonb not null default '{}',
  annotations jsonb not null default '{}',
  starts_at text,
  ends_at text,
  fingerprint text,
  received_at timestamptz not null default now()
);
create index alerts_newest_first on alerts (received_at desc, id desc);
