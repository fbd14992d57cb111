create table orders (
  id uuid primary key,
  user_id uuid not null,
  status text not null check (status in ('pending', 'confirmed', 'on_hold', 'canceled')),
  total_cents bigint not null,
  -- The last four digits of the card, never the number.
  card_last4 text not null,
  payment_id uuid,
  reason text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index orders_user on orders (user_id, created_at desc);
create table order_items (
  order_id uuid not null references orders (id),
  product_id uuid not null,
  name text not null,
  quantity int not null check (quantity > 0),
  unit_price_cents bigint not null,
  primary key (order_id, product_id)
);
