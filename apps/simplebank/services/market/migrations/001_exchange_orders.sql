-- What the exchange answered for each order (the order id is its client order id there, so asking
-- again after a lost answer returns the same answer and never trades twice).
create table exchange_orders (
  order_id uuid primary key,
  exchange_order_id text not null,
  status text not null check (status in ('filled', 'rejected')),
  price_cents bigint,
  reason text,
  answered_at timestamptz not null default now()
);
