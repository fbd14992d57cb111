-- The seed users of specs/simplebank.md; the passwords are alice-password, bob-password and admin-password.
insert into users (username, password_hash, roles, accounts) values
  ('alice', '$2b$10$NA3GflgAWMst.W.pvM1uiu9IPU.JHYjbF.x9Vu3u10XD.eNrBiRAm', '{customer}', '{101}'),
  ('bob', '$2b$10$RqvIg1NVKJXIuozd67k8ke55Fq0RqJp25ZgEBxikmRXvVUweIhDP2', '{customer}', '{102}'),
  ('admin', '$2b$10$tjlj9e2RlOZYOHWYF3Z8Be5iET2g/v1piXWH8o//x4yYpSqksKMUa', '{admin}', '{}')
on conflict (username) do nothing;
