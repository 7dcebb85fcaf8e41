-- Issue 18. Agent runs in progress, for a deployment of several nodes on one database: a stop request made
-- through any node reaches the node that streams the run. Only a shared (PostgreSQL) database uses it; the
-- table exists here so both engines keep the same migration numbers.
CREATE TABLE agent_run (
    node_id         TEXT    NOT NULL,
    run_id          INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    heartbeat_at    INTEGER NOT NULL,
    stop_requested  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, run_id)
);
CREATE INDEX agent_run_conversation ON agent_run (conversation_id);
