-- Model Management (nexent-api.md §1.6, §4): the models a user added, and the local GGUF files found in
-- the models folder (model_factory 'local'). Soft-deleted like Nexent's model_record_t.
CREATE TABLE model_record (
    model_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    model_repo     TEXT    NOT NULL DEFAULT '',
    model_name     TEXT    NOT NULL,
    model_factory  TEXT    NOT NULL DEFAULT 'OpenAI-API-Compatible',
    model_type     TEXT    NOT NULL,
    api_key        TEXT    NOT NULL DEFAULT '',
    base_url       TEXT    NOT NULL DEFAULT '',
    max_tokens     INTEGER NOT NULL DEFAULT 0,
    used_token     INTEGER NOT NULL DEFAULT 0,
    display_name   TEXT    NOT NULL,
    connect_status TEXT    NOT NULL DEFAULT 'not_detected',
    create_time    INTEGER NOT NULL,
    update_time    INTEGER NOT NULL,
    delete_flag    TEXT    NOT NULL DEFAULT 'N'
);
CREATE INDEX model_record_by_name ON model_record (model_name, model_repo, delete_flag);
