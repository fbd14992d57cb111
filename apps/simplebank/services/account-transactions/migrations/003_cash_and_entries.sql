-- Cash reserved for open orders (a buy's cost, an order's fee): free cash = cash - reserved >= 0.
alter table accounts add column cash_reserved_cents bigint not null default 0;
alter table accounts add constraint accounts_cash_reserved check (cash_reserved_cents >= 0 and cash_reserved_cents <= cash_cents);

-- A reservation now holds shares (a sell), cash (a buy, a fee) or both; a buy may be for a symbol the
-- account does not hold yet.
alter table reservations drop constraint reservations_account_id_symbol_fkey;
alter table reservations drop constraint reservations_quantity_check;
alter table reservations add column side text not null default 'sell' check (side in ('sell', 'buy'));
alter table reservations add column cash_cents bigint not null default 0 check (cash_cents >= 0);
alter table reservations add constraint reservations_quantity check (quantity >= 0);

-- The double-entry ledger: every movement is two or more entries that sum to zero per asset. Customer
-- accounts are the account ids; the other side is a book of the bank: `exchange` (the counterparty of
-- trades), `fees` (fee income), `payments` (money coming in) and `opening` (the seed balances).
create table entries (
  id bigint generated always as identity primary key,
  order_id uuid,
  account text not null,
  asset text not null,
  amount bigint not null,
  kind text not null check (kind in ('opening', 'trade', 'fee', 'fee_refund', 'payment')),
  at timestamptz not null default now()
);
create index entries_by_account on entries (account, id desc);
-- A fee is charged and refunded at most once per order: retries find the entry and change nothing.
create unique index entries_fee_once on entries (order_id, account, kind) where kind in ('fee', 'fee_refund');

insert into entries (account, asset, amount, kind)
  select id, 'CASH', cash_cents, 'opening' from accounts where cash_cents <> 0
  union all
  select account_id, symbol, quantity, 'opening' from positions where quantity <> 0;
insert into entries (account, asset, amount, kind)
  select 'opening', asset, -sum(amount), 'opening' from entries group by asset;

-- Orders whose fee was refunded before it was charged (their failure overtook their placement): a
-- late charge for them is refused, so no fee is left standing for a failed order.
create table fee_voids (
  order_id uuid primary key,
  at timestamptz not null default now()
);
