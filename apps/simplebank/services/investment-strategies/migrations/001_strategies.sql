-- Premade strategies: how an investment is split across assets (percentages summing to 100).
create table strategies (
  id uuid primary key,
  name text not null,
  assets jsonb not null,
  created_by text not null,
  created_at timestamptz not null default now()
);
