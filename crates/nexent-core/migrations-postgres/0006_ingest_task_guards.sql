-- PostgreSQL twin of migrations/0006_ingest_task_guards.sql (BIGINT for SQLite's INTEGER, identity columns for AUTOINCREMENT).
-- Issue 15. `local_file`: the task reads a local path, which only the folder watcher may submit (a request
-- names stored objects only). `parse_started_at`: set while a binary-format parser runs, cleared when it
-- returns; a task found with it set at start-up killed the server while parsing, so it is failed, not retried.
ALTER TABLE ingest_task ADD COLUMN local_file BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ingest_task ADD COLUMN parse_started_at BIGINT;
