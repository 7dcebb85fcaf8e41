-- Data Process (nexent-api.md §1.4, §3.4): the persistent task queue.
-- status: WAITING -> PROCESSING -> FORWARDING -> COMPLETED | FAILED.
CREATE TABLE ingest_task (
    task_id           TEXT PRIMARY KEY,
    source            TEXT    NOT NULL,
    source_type       TEXT    NOT NULL CHECK (source_type IN ('file', 'url', 'text')),
    index_name        TEXT    NOT NULL,
    chunking_strategy TEXT,
    file_name         TEXT    NOT NULL,
    file_size         INTEGER,
    status            TEXT    NOT NULL CHECK (status IN ('WAITING', 'PROCESSING', 'FORWARDING', 'COMPLETED', 'FAILED')),
    error             TEXT,
    chunk_count       INTEGER,
    result_preview    TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX ingest_task_by_status ON ingest_task (status, created_at);
CREATE INDEX ingest_task_by_index ON ingest_task (index_name, status);
