-- The read model of one news type: the latest version of each item, whole, as JSONB (the book kept it
-- in MongoDB). Versions may arrive late or twice; an older one never overwrites a newer one.
create table news (
  id integer primary key,
  version integer not null,
  created_at timestamptz not null,
  doc jsonb not null
);
create index news_newest_first on news (created_at desc, id desc);
