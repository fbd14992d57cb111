-- Orders are event-sourced: each order is a stream in this schema's event store (chassis_events,
-- installed when the service starts). This file gives the service its schema, outbox and inbox.
select 1;
