-- SimpleBank's floor (issue 12): one sell order's minimal SQL, a pgbench script (-M prepared) against the
-- bank's own schema (its services' migrations and the data kit's outbox, inbox and event store). Each
-- step is one transaction of the service that does it, as a perfect implementation would write it: every
-- statement prepared, no read it could do without. One run of the script is one order; the runner
-- (simplebank-floor.ts) counts the statements and transactions here and reports orders/s and CPU per order.
--
-- The order's path: orders records it (event + outbox) → the ledger reserves on order_created → market
-- fills it on reservation_held → fees records the fee on trade_executed → the ledger settles trade and fee
-- on fee_charged → orders completes it on trade_settled → customer-orders writes its row on
-- order_changed. Each consumer records the message it handles (inbox) and announces one event (outbox);
-- the relay marks the six rows sent. Left out: NOTIFY (the kit wakes relays and projections with it), a
-- read model row written before completion, and anything the real services read before they write.

-- One account per client (bench/src/simplebank-load.ts seeds 5000, 5001, …), as the bench's customers.
\set acct 5000 + :client_id
\set qty 1
\set price random(4400, 4600)
\set notional :qty * :price
-- feeFor: 0.1 % of the notional, at least 1.00; a sell holds the fee of its proceeds at a 5 % rise.
\set fee greatest(100, (:notional + 999) / 1000)
\set held greatest(100, (:notional * 105 / 100 + 999) / 1000)

-- 1. orders (sellShares): the order's stream and its first event, and order_created in the outbox.
begin;
select substr(stream, 7) as oid from orders.chassis_append('order-' || gen_random_uuid(), 'no_stream',
  jsonb_build_array(jsonb_build_object('id', gen_random_uuid(), 'type', 'OrderCreated', 'metadata', '{}'::jsonb,
    'data', jsonb_build_object('accountId', :acct::text, 'side', 'sell', 'symbol', 'BHP', 'quantity', :qty::int,
      'limitPriceCents', :price::int, 'reservedCashCents', :held::int, 'expiresAt', now() + interval '5 minutes'))),
  null) \gset
insert into orders.chassis_outbox (event, headers, body) values ('orders.order_created',
  json_build_object('id', gen_random_uuid(), 'type', 'orders.order_created', 'correlation-id', :oid::text),
  convert_to(json_build_object('orderId', :oid::text, 'accountId', :acct::text, 'side', 'sell', 'symbol', 'BHP',
    'quantity', :qty::int, 'limitPrice', round(:price::int / 100.0, 2)::text, 'createdAt', now())::text, 'UTF8'))
returning id as orders_row_1, headers->>'id' as order_created \gset
commit;

-- 2. account-transactions: reserves the fee's cash and the shares (each update locks its row and checks
-- what is free), records the reservation; reservation_held.
begin;
insert into "account-transactions".chassis_inbox (subscription, message_id)
  values ('account-transactions.reserve', :order_created) on conflict do nothing returning 1;
update "account-transactions".accounts set cash_reserved_cents = cash_reserved_cents + :held
  where id = :acct and cash_cents - cash_reserved_cents >= :held;
update "account-transactions".positions set reserved = reserved + :qty
  where account_id = :acct and symbol = 'BHP' and quantity - reserved >= :qty;
insert into "account-transactions".reservations (order_id, account_id, side, symbol, quantity, cash_cents)
  values (:oid::uuid, :acct, 'sell', 'BHP', :qty, :held);
insert into "account-transactions".chassis_outbox (event, headers, body) values ('account-transactions.reservation_held',
  json_build_object('id', gen_random_uuid(), 'type', 'account-transactions.reservation_held', 'correlation-id', :oid::text),
  convert_to(json_build_object('orderId', :oid::text, 'accountId', :acct::text, 'side', 'sell', 'symbol', 'BHP',
    'quantity', :qty::int, 'limitPrice', round(:price::int / 100.0, 2)::text)::text, 'UTF8'))
returning id as ledger_row_1, headers->>'id' as reservation_held \gset
commit;

-- 3. market: the exchange's answer (filled), and trade_executed.
begin;
insert into market.chassis_inbox (subscription, message_id)
  values ('market.place', :reservation_held) on conflict do nothing returning 1;
insert into market.exchange_orders (order_id, exchange_order_id, status, price_cents)
  values (:oid::uuid, 'x-' || :oid, 'filled', :price) on conflict do nothing;
insert into market.chassis_outbox (event, headers, body) values ('market.trade_executed',
  json_build_object('id', gen_random_uuid(), 'type', 'market.trade_executed', 'correlation-id', :oid::text),
  convert_to(json_build_object('orderId', :oid::text, 'accountId', :acct::text, 'side', 'sell', 'symbol', 'BHP',
    'quantity', :qty::int, 'exchangeOrderId', 'x-' || :oid, 'price', round(:price::int / 100.0, 2)::text)::text, 'UTF8'))
returning id as market_row, headers->>'id' as trade_executed \gset
commit;

-- 4. fees: the order's fee, and fee_charged.
begin;
insert into fees.chassis_inbox (subscription, message_id)
  values ('fees.charge', :trade_executed) on conflict do nothing returning 1;
insert into fees.fees (order_id, account_id, symbol, fee_cents, status)
  values (:oid::uuid, :acct, 'BHP', :fee, 'charged') on conflict do nothing;
insert into fees.chassis_outbox (event, headers, body) values ('fees.fee_charged',
  json_build_object('id', gen_random_uuid(), 'type', 'fees.fee_charged', 'correlation-id', :oid::text),
  convert_to(json_build_object('orderId', :oid::text, 'accountId', :acct::text, 'symbol', 'BHP',
    'fee', round(:fee::int / 100.0, 2)::text, 'price', round(:price::int / 100.0, 2)::text)::text, 'UTF8'))
returning id as fees_row, headers->>'id' as fee_charged \gset
commit;

-- 5. account-transactions settles: the trade's and the fee's entries, the balances they move (account
-- first, as every ledger change), the reservation consumed; trade_settled.
begin;
insert into "account-transactions".chassis_inbox (subscription, message_id)
  values ('account-transactions.settle', :fee_charged) on conflict do nothing returning 1;
insert into "account-transactions".entries (order_id, account, asset, amount, kind) values
  (:oid::uuid, :acct, 'BHP', -:qty::bigint, 'trade'), (:oid::uuid, 'exchange', 'BHP', :qty, 'trade'),
  (:oid::uuid, :acct, 'CASH', :notional, 'trade'), (:oid::uuid, 'exchange', 'CASH', -:notional::bigint, 'trade'),
  (:oid::uuid, :acct, 'CASH', -:fee::bigint, 'fee'), (:oid::uuid, 'fees', 'CASH', :fee, 'fee');
update "account-transactions".accounts
  set cash_cents = cash_cents + :notional - :fee, cash_reserved_cents = cash_reserved_cents - :held where id = :acct;
update "account-transactions".positions set quantity = quantity - :qty, reserved = reserved - :qty
  where account_id = :acct and symbol = 'BHP';
update "account-transactions".reservations set status = 'consumed' where order_id = :oid::uuid and status = 'held';
insert into "account-transactions".chassis_outbox (event, headers, body) values ('account-transactions.trade_settled',
  json_build_object('id', gen_random_uuid(), 'type', 'account-transactions.trade_settled', 'correlation-id', :oid::text),
  convert_to(json_build_object('orderId', :oid::text, 'accountId', :acct::text, 'symbol', 'BHP',
    'price', round(:price::int / 100.0, 2)::text, 'fee', round(:fee::int / 100.0, 2)::text)::text, 'UTF8'))
returning id as ledger_row_2, headers->>'id' as trade_settled \gset
commit;

-- 6. orders: the status change (OrderCompleted at version 2, checked by the append), and order_changed.
begin;
insert into orders.chassis_inbox (subscription, message_id)
  values ('orders.complete', :trade_settled) on conflict do nothing returning 1;
select version from orders.chassis_append('order-' || :oid, '1',
  jsonb_build_array(jsonb_build_object('id', gen_random_uuid(), 'type', 'OrderCompleted', 'metadata', '{}'::jsonb,
    'data', jsonb_build_object('priceCents', :price::int, 'feeCents', :fee::int))), null);
insert into orders.chassis_outbox (event, headers, body) values ('orders.order_changed',
  json_build_object('id', gen_random_uuid(), 'type', 'orders.order_changed', 'correlation-id', :oid::text),
  convert_to(json_build_object('id', :oid::text, 'accountId', :acct::text, 'side', 'sell', 'symbol', 'BHP',
    'quantity', :qty::int, 'status', 'completed', 'price', round(:price::int / 100.0, 2)::text, 'fee', round(:fee::int / 100.0, 2)::text,
    'reason', null, 'history', json_build_array(json_build_object('status', 'created', 'at', now()),
      json_build_object('status', 'completed', 'at', now())), 'version', 2)::text, 'UTF8'))
returning id as orders_row_2, headers->>'id' as order_changed \gset
commit;

-- 7. customer-orders: the order's row in the read model (an older version never overwrites a newer one).
begin;
insert into "customer-orders".chassis_inbox (subscription, message_id)
  values ('customer-orders.summarize', :order_changed) on conflict do nothing returning 1;
insert into "customer-orders".order_summaries
  (order_id, account_id, side, symbol, quantity, status, price_cents, fee_cents, history, version, created_at)
  values (:oid::uuid, :acct, 'sell', 'BHP', :qty, 'completed', :price, :fee,
    jsonb_build_array(jsonb_build_object('status', 'created', 'at', now()),
      jsonb_build_object('status', 'completed', 'at', now())), 2, now())
  on conflict (order_id) do update set status = excluded.status, price_cents = excluded.price_cents,
    fee_cents = excluded.fee_cents, history = excluded.history, version = excluded.version
  where order_summaries.version < excluded.version;
commit;

-- 8. The relays: the six outbox rows marked sent (each service's relay in its own transaction, over a
-- batch of many orders, in the bank; here the order's share of that, in one).
begin;
update orders.chassis_outbox set sent_at = clock_timestamp() where id in (:orders_row_1, :orders_row_2);
update "account-transactions".chassis_outbox set sent_at = clock_timestamp() where id in (:ledger_row_1, :ledger_row_2);
update market.chassis_outbox set sent_at = clock_timestamp() where id = :market_row;
update fees.chassis_outbox set sent_at = clock_timestamp() where id = :fees_row;
commit;
