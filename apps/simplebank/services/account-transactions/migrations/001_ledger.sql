-- Accounts with their cash in integer minor units (cents): money is never a float.
create table accounts (
  id text primary key,
  name text not null,
  owner text not null,
  cash_cents bigint not null check (cash_cents >= 0)
);

-- Shares held: `reserved` of `quantity` are promised to open orders; free = quantity - reserved >= 0.
create table positions (
  account_id text not null references accounts (id),
  symbol text not null,
  quantity bigint not null check (quantity >= 0),
  reserved bigint not null default 0 check (reserved >= 0 and reserved <= quantity),
  primary key (account_id, symbol)
);

-- One reservation per order: reserving again for the same order finds it and changes nothing.
create table reservations (
  order_id uuid primary key,
  account_id text not null,
  symbol text not null,
  quantity bigint not null check (quantity > 0),
  status text not null default 'held' check (status in ('held', 'released', 'consumed')),
  created_at timestamptz not null default now(),
  foreign key (account_id, symbol) references positions (account_id, symbol)
);
