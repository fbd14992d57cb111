-- One row per order, whatever order its events arrive in: a failure seen before the placement voids
-- the fee, so the late placement charges nothing.
create table fees (
  order_id uuid primary key,
  account_id text not null,
  symbol text not null,
  fee_cents bigint not null default 0 check (fee_cents >= 0),
  status text not null check (status in ('charged', 'refunded', 'voided', 'waived')),
  updated_at timestamptz not null default now()
);
