-- The seed customers of specs/simplebank.md want email.
insert into contact_preferences (account_id, channel, address) values
  ('101', 'email', 'alice@example.com'),
  ('102', 'email', 'bob@example.com')
on conflict (account_id) do nothing;
