-- The recommendation graph (the book kept it in Neo4j): users and labels are nodes, "read about" is an
-- edge from a user to a label. No duplicate nodes or edges: the unique keys make adding them idempotent.
create table nodes (
  id serial primary key,
  kind text not null check (kind in ('user', 'label')),
  key text not null,
  props jsonb not null default '{}',
  unique (kind, key)
);
create table edges (
  source integer not null references nodes (id),
  target integer not null references nodes (id),
  kind text not null default 'read_about',
  primary key (source, target, kind)
);
create index edges_by_target on edges (target, kind);
