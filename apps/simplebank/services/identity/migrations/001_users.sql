create table users (
  username text primary key,
  -- bcrypt, cost 10: never the password itself.
  password_hash text not null,
  roles text[] not null default '{}',
  -- The accounts this user owns: the `accounts` claim of their tokens.
  accounts text[] not null default '{}',
  created_at timestamptz not null default now()
);
