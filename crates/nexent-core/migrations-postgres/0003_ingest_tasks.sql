-- PostgreSQL twin of migrations/0003_ingest_tasks.sql (BIGINT for SQLite's INTEGER, identity columns for AUTOINCREMENT).
-- Data Process (nexent-api.md §1.4, §3.4): the persistent task queue.
-- status: WAITING -> PROCESSING -> FORWARDING -> COMPLETED | FAILED.
CREATE TABLE ingest_task (
    task_id           TEXT PRIMARY KEY,
    source            TEXT    NOT NULL,
    source_type       TEXT    NOT NULL CHECK (source_type IN ('file', 'url', 'text')),
    index_name        TEXT    NOT NULL,
    chunking_strategy TEXT,
    file_name         TEXT    NOT NULL,
    file_size         BIGINT,
    status            TEXT    NOT NULL CHECK (status IN ('WAITING', 'PROCESSING', 'FORWARDING', 'COMPLETED', 'FAILED')),
    error             TEXT,
    chunk_count       BIGINT,
    result_preview    TEXT,
    attempts          BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX ingest_task_by_status ON ingest_task (status, created_at);
CREATE INDEX ingest_task_by_index ON ingest_task (index_name, status);
