create table users (
  id uuid primary key,
  username text not null,
  name text not null,
  email text not null,
  roles text[] not null default '{customer}',
  created_at timestamptz not null default now()
);
-- Usernames and e-mail addresses are unique whatever their case.
create unique index users_username on users (lower(username));
create unique index users_email on users (lower(email));
-- The seed admin of specs/shop.md (its credentials are in auth's migrations).
insert into users (id, username, name, email, roles)
values ('00000000-0000-4000-8000-000000000001', 'admin', 'Shop admin', 'admin@shop.example', '{admin}')
on conflict do nothing;
