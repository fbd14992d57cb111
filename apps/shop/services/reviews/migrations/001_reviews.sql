create table reviews (
  id uuid primary key,
  product_id uuid not null,
  user_id uuid not null,
  username text not null,
  rating int not null check (rating between 1 and 5),
  comment text not null,
  created_at timestamptz not null default now()
);
create index reviews_product on reviews (product_id, created_at desc);
create index reviews_recent on reviews (created_at desc);
