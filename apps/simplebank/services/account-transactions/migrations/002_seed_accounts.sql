-- The seed data of specs/simplebank.md.
insert into accounts (id, name, owner, cash_cents) values
  ('101', 'Alice''s investments', 'alice', 1000000),
  ('102', 'Bob''s investments', 'bob', 250000)
on conflict (id) do nothing;

insert into positions (account_id, symbol, quantity) values
  ('101', 'BHP', 1000),
  ('101', 'GOOG', 103),
  ('101', 'ABC', 24),
  ('102', 'BHP', 50)
on conflict (account_id, symbol) do nothing;
