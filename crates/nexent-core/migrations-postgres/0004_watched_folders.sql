-- PostgreSQL twin of migrations/0004_watched_folders.sql (BIGINT for SQLite's INTEGER, identity columns for AUTOINCREMENT).
-- Watched folders (beyond Nexent): a folder whose files are kept ingested into one knowledge base.
CREATE TABLE watched_folder (
    id                TEXT PRIMARY KEY,
    path              TEXT    NOT NULL,
    index_name        TEXT    NOT NULL,
    chunking_strategy TEXT,
    created_at        BIGINT NOT NULL,
    UNIQUE (path, index_name)
);

-- What was last submitted for each file, so a restart re-ingests only files whose content changed.
CREATE TABLE watched_file (
    folder_id   TEXT    NOT NULL REFERENCES watched_folder (id) ON DELETE CASCADE,
    path        TEXT    NOT NULL,
    size        BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL,
    sha256      TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    PRIMARY KEY (folder_id, path)
);
