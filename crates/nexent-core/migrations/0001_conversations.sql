-- Conversation Management (nexent-api.md §1.2, §2.4). Timestamps are integer milliseconds since the
-- Unix epoch, UTC. Soft deletion: delete_flag 'N' (live) or 'Y' (deleted), as Nexent's tables.
CREATE TABLE conversation_record (
    conversation_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_title TEXT    NOT NULL,
    delete_flag        TEXT    NOT NULL DEFAULT 'N' CHECK (delete_flag IN ('N', 'Y')),
    create_time        INTEGER NOT NULL,
    update_time        INTEGER NOT NULL
);
CREATE INDEX conversation_record_live ON conversation_record (delete_flag, create_time DESC);

CREATE TABLE conversation_message (
    message_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversation_record (conversation_id),
    message_index   INTEGER NOT NULL,
    message_role    TEXT    NOT NULL CHECK (message_role IN ('user', 'assistant')),
    message_content TEXT    NOT NULL DEFAULT '',
    minio_files     TEXT,
    opinion_flag    TEXT    CHECK (opinion_flag IN ('Y', 'N')),
    delete_flag     TEXT    NOT NULL DEFAULT 'N' CHECK (delete_flag IN ('N', 'Y')),
    create_time     INTEGER NOT NULL,
    update_time     INTEGER NOT NULL
);
CREATE INDEX conversation_message_by_conversation ON conversation_message (conversation_id, message_index);

CREATE TABLE conversation_message_unit (
    unit_id         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      INTEGER NOT NULL REFERENCES conversation_message (message_id),
    conversation_id INTEGER NOT NULL REFERENCES conversation_record (conversation_id),
    unit_index      INTEGER NOT NULL,
    unit_type       TEXT    NOT NULL,
    unit_content    TEXT    NOT NULL,
    delete_flag     TEXT    NOT NULL DEFAULT 'N' CHECK (delete_flag IN ('N', 'Y')),
    create_time     INTEGER NOT NULL
);
CREATE INDEX conversation_message_unit_by_message ON conversation_message_unit (message_id, unit_index);

CREATE TABLE conversation_source_search (
    search_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      INTEGER NOT NULL REFERENCES conversation_message (message_id),
    conversation_id INTEGER NOT NULL REFERENCES conversation_record (conversation_id),
    source_type     TEXT,
    source_title    TEXT,
    source_location TEXT,
    source_content  TEXT,
    score_overall   REAL,
    score_accuracy  REAL,
    score_semantic  REAL,
    published_date  TEXT,
    cite_index      INTEGER,
    search_type     TEXT,
    tool_sign       TEXT,
    delete_flag     TEXT    NOT NULL DEFAULT 'N' CHECK (delete_flag IN ('N', 'Y')),
    create_time     INTEGER NOT NULL
);
CREATE INDEX conversation_source_search_by_message ON conversation_source_search (message_id);
CREATE INDEX conversation_source_search_by_conversation ON conversation_source_search (conversation_id);

CREATE TABLE conversation_source_image (
    image_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      INTEGER NOT NULL REFERENCES conversation_message (message_id),
    conversation_id INTEGER NOT NULL REFERENCES conversation_record (conversation_id),
    image_url       TEXT    NOT NULL,
    cite_index      INTEGER,
    search_type     TEXT,
    delete_flag     TEXT    NOT NULL DEFAULT 'N' CHECK (delete_flag IN ('N', 'Y')),
    create_time     INTEGER NOT NULL
);
CREATE INDEX conversation_source_image_by_message ON conversation_source_image (message_id);
CREATE INDEX conversation_source_image_by_conversation ON conversation_source_image (conversation_id);
