-- PostgreSQL twin of migrations/0007_deployment_secret.sql.
-- Issue 18. Secrets every node of one deployment must share (the URL-signing key), kept in the shared
-- database. An embedded data dir keeps its key in `storage.secret` and leaves this table empty.
CREATE TABLE deployment_secret (
    name   TEXT PRIMARY KEY,
    secret TEXT NOT NULL
);
