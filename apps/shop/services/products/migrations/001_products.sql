create table products (
  id uuid primary key,
  name text not null,
  description text not null default '',
  price_cents bigint not null check (price_cents > 0),
  created_at timestamptz not null default now(),
  -- The words of the name and description, lower-cased ('simple': no stemming, no stop words), for
  -- the case-insensitive search; kept by PostgreSQL itself, indexed below.
  search tsvector generated always as (to_tsvector('simple', name || ' ' || description)) stored
);
create index products_search on products using gin (search);
create index products_name on products (lower(name));
-- A small catalogue to try the shop with.
insert into products (id, name, description, price_cents) values
  ('10000000-0000-4000-8000-000000000001', 'Walnut desk', 'A solid walnut writing desk', 54900),
  ('10000000-0000-4000-8000-000000000002', 'Desk lamp', 'An adjustable LED lamp for the desk', 3999),
  ('10000000-0000-4000-8000-000000000003', 'Noise-cancelling headphones', 'Over-ear, wireless', 24999),
  ('10000000-0000-4000-8000-000000000004', 'Diamond necklace', 'Eighteen-carat gold with a one-carat diamond', 1250000)
on conflict do nothing;
