create table payments (
  id uuid primary key,
  -- One payment per order, ever: a charge asked again (a retry, a resumed saga) finds this row.
  order_id uuid not null unique,
  user_id uuid,
  amount_cents bigint not null,
  status text not null check (status in ('charged', 'held', 'declined', 'voided')),
  -- Whether money was ever taken: a voided charge was taken and refunded.
  charged boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
