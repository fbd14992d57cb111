-- An admin's decision on an order held for review (approve: charge and confirm; reject: void and
-- cancel), recorded once: a second review of the same order is refused.
alter table orders add column review text check (review in ('approve', 'reject'));
