-- What each user bought, from the confirmed orders (order_confirmed): the order history this service
-- recommends from.
create table purchases (
  user_id uuid not null,
  product_id uuid not null,
  name text not null,
  quantity int not null,
  primary key (user_id, product_id)
);
create index purchases_product on purchases (product_id);
