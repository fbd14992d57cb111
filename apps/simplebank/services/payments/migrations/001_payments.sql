-- Simulated card payments into accounts. The ledger credits each once, by its id.
create table payments (
  id uuid primary key,
  account_id text not null,
  amount_cents bigint not null check (amount_cents > 0),
  status text not null check (status in ('pending', 'completed', 'failed')),
  -- Who paid: the caller's subject.
  created_by text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index payments_by_account on payments (account_id, created_at desc);
