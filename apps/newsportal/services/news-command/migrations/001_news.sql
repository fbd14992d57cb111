-- News items are event-sourced: each is a stream (`news-<id>`) in this schema's event store, every
-- version an event (never an UPDATE). Ids come from this sequence.
create sequence news_ids;
