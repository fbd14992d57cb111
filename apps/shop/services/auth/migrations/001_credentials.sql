create table credentials (
  user_id uuid primary key,
  username text not null unique,
  -- bcrypt, cost 10: never the password itself.
  password_hash text not null,
  roles text[] not null default '{customer}'
);
-- The seed admin of specs/shop.md: admin / admin-password.
insert into credentials (user_id, username, password_hash, roles)
values ('00000000-0000-4000-8000-000000000001', 'admin', '$2b$10$ktvrTkEqRw5dWjLaNCpkQ.zMBjoh00atPbHNScUL4b2V6CpuKs2BW', '{admin}')
on conflict do nothing;
