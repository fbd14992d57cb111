-- One investment per payment: investing again with the same payment finds the first one.
create table investments (
  id uuid primary key,
  strategy_id uuid not null,
  account_id text not null,
  amount_cents bigint not null check (amount_cents > 0),
  payment_id uuid not null unique,
  status text not null check (status in ('awaiting_payment', 'placing', 'completed', 'partially_completed', 'failed')),
  created_at timestamptz not null default now()
);

-- One buy order per allocation; its id is derived from the investment and the symbol, so placing it
-- again (a redelivered step) finds the same order instead of buying twice.
create table investment_orders (
  investment_id uuid not null references investments (id),
  symbol text not null,
  amount_cents bigint not null,
  order_id uuid not null unique,
  status text not null default 'pending',
  reason text,
  primary key (investment_id, symbol)
);
