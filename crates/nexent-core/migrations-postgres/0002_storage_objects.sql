-- PostgreSQL twin of migrations/0002_storage_objects.sql (BIGINT for SQLite's INTEGER, identity columns for AUTOINCREMENT).
-- File Management (nexent-api.md §1.9, §6.1): what object storage does not keep itself.
CREATE TABLE storage_object (
    object_name  TEXT PRIMARY KEY,
    file_name    TEXT    NOT NULL,
    size         BIGINT NOT NULL,
    content_type TEXT    NOT NULL,
    upload_time  BIGINT NOT NULL
);
