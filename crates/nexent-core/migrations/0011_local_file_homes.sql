-- Issue 18. A watched folder is a path on one machine, so it and the tasks that read its files belong to the
-- node (data dir) that added it: other nodes of a deployment neither watch it nor take those tasks.
-- NULL (rows from before): any node, as before.
ALTER TABLE watched_folder ADD COLUMN home_node TEXT;
ALTER TABLE ingest_task ADD COLUMN home_node TEXT;
