-- The users of the portal (specs/newsportal.md). Ids are reserved from users_id_seq when a user is
-- created, before the write-behind worker inserts the row; the password is kept as a bcrypt hash only.
create table users (
  id serial primary key,
  name text not null,
  email text not null unique,
  password_hash text not null
);
