-- PostgreSQL twin of migrations/0010_agent_runs.sql.
-- Issue 18. Agent runs in progress, so a stop request made through any node reaches the node that streams
-- the run (it polls for requests and keeps its rows' heartbeats fresh).
CREATE TABLE agent_run (
    node_id         TEXT   NOT NULL,
    run_id          BIGINT NOT NULL,
    conversation_id BIGINT NOT NULL,
    started_at      BIGINT NOT NULL,
    heartbeat_at    BIGINT NOT NULL,
    stop_requested  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, run_id)
);
CREATE INDEX agent_run_conversation ON agent_run (conversation_id);
