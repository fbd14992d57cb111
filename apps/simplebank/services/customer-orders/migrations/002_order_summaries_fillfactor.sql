-- Room on each page for a row's later versions: an order's row is inserted and updated again within
-- a second or two (placed, completed). Packed full, an update finds no room on its row's page, moves
-- the row to another and writes a new entry in both indexes (measured: 15% of the updates were HOT);
-- with room left, the update stays on the page (HOT: no index entry) and the old version is pruned in
-- place. Pages filled from now on keep it; the table is twice as large for it.
alter table order_summaries set (fillfactor = 50);
