-- The read model of orders (CQRS): one row per order, the latest version seen of it. Changes may come
-- in any order and more than once; an older version never overwrites a newer one.
create table order_summaries (
  order_id uuid primary key,
  account_id text not null,
  side text not null,
  symbol text not null,
  quantity bigint not null,
  status text not null,
  price_cents bigint,
  fee_cents bigint,
  reason text,
  history jsonb not null,
  version bigint not null,
  created_at timestamptz not null
);
create index order_summaries_by_account on order_summaries (account_id, created_at desc);
