-- How each account wants to be told: one channel and address per account.
create table contact_preferences (
  account_id text primary key,
  channel text not null check (channel in ('email', 'sms')),
  address text not null
);

-- The sink: what was "sent". One notification per event, however often the event is delivered.
create table notifications (
  id bigint generated always as identity primary key,
  account_id text not null,
  channel text not null check (channel in ('email', 'sms')),
  -- Null when the account has no contact preference: recorded, delivered nowhere.
  address text,
  subject text not null,
  body text not null,
  -- `<event name>:<order or payment id>`.
  event_id text not null unique,
  sent_at timestamptz not null default now()
);
create index notifications_by_account on notifications (account_id, sent_at desc, id desc);
