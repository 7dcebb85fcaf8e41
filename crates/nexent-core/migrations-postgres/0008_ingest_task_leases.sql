-- PostgreSQL twin of migrations/0008_ingest_task_leases.sql.
-- Issue 18. Which node runs a task and until when its claim holds: a node renews the lease while it
-- works; on a shared database, a task whose lease expired (its node died) goes back to the queue.
ALTER TABLE ingest_task ADD COLUMN claimed_by TEXT;
ALTER TABLE ingest_task ADD COLUMN lease_until BIGINT;
