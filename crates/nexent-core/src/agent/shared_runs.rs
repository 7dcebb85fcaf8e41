//! Agent runs across the nodes of one deployment (a shared PostgreSQL database): a run streams from the
//! node its client reached, but `GET /api/agent/stop/{id}` may reach any node.
//!
//! Each node records its runs in `agent_run` and, every [`POLL`], renews their heartbeat and cancels the
//! ones another node asked to stop. A node asked to stop a run it does not hold marks the conversation's
//! live rows (heartbeat fresher than [`ALIVE`]) and waits a little for the owner to end the run, so the
//! client learns whether it stopped. Rows of a node that died are dropped once their heartbeat is old.

use std::time::Duration;

use sqlx::Row;

use super::AgentRuns;
use crate::clock::now_millis;
use crate::db::Database;

/// How often a node renews its runs' heartbeats and looks for stop requests.
const POLL: Duration = Duration::from_millis(300);
/// A row whose heartbeat is older than this belongs to a node that is gone.
const ALIVE: Duration = Duration::from_secs(5);
/// How long a stop request made on another node waits for the run to end before saying "requested".
const STOP_WAIT: Duration = Duration::from_secs(5);

/// What a stop request achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReach {
    /// The run was on this node and is stopped.
    Stopped,
    /// The run was on another node, which stopped it.
    StoppedElsewhere,
    /// The run is on another node, which has been asked and has not ended it yet.
    Requested,
    /// No node runs the conversation.
    NotRunning,
}

#[derive(Clone)]
pub struct SharedRuns {
    db: Database,
    node_id: String,
}

impl SharedRuns {
    pub fn new(db: Database) -> Self {
        Self { db, node_id: uuid::Uuid::new_v4().to_string() }
    }

    /// Records a run this node starts.
    pub async fn announce(&self, run_id: u64, conversation_id: i64) {
        let now = now_millis();
        let result = sqlx::query(
            "INSERT INTO agent_run (node_id, run_id, conversation_id, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&self.node_id)
        .bind(run_id as i64)
        .bind(conversation_id)
        .bind(now)
        .execute(self.db.pool())
        .await;
        if let Err(error) = result {
            // The run goes on; only a stop request through another node would miss it.
            tracing::warn!(%error, conversation_id, "cannot record an agent run for the other nodes");
        }
    }

    /// Forgets a run this node finished.
    pub async fn retire(&self, run_id: u64) {
        let result = sqlx::query("DELETE FROM agent_run WHERE node_id = $1 AND run_id = $2")
            .bind(&self.node_id)
            .bind(run_id as i64)
            .execute(self.db.pool())
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, "cannot remove a finished agent run's record");
        }
    }

    /// Asks the node that runs `conversation_id` to stop it, and waits a little for it to.
    pub async fn request_stop(&self, conversation_id: i64) -> Result<StopReach, sqlx::Error> {
        let fresh = now_millis() - ALIVE.as_millis() as i64;
        let marked = sqlx::query(
            "UPDATE agent_run SET stop_requested = 1 WHERE conversation_id = $1 AND heartbeat_at > $2 RETURNING run_id",
        )
        .bind(conversation_id)
        .bind(fresh)
        .fetch_all(self.db.pool())
        .await?;
        if marked.is_empty() {
            return Ok(StopReach::NotRunning);
        }
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL / 3).await;
            let left = sqlx::query(
                "SELECT count(*) AS left_count FROM agent_run WHERE conversation_id = $1 AND stop_requested = 1",
            )
            .bind(conversation_id)
            .fetch_one(self.db.pool())
            .await?
            .get::<i64, _>("left_count");
            if left == 0 {
                return Ok(StopReach::StoppedElsewhere);
            }
        }
        Ok(StopReach::Requested)
    }

    /// Keeps this node's runs visible to the others and obeys their stop requests, for as long as the
    /// process runs.
    pub fn watch(&self, runs: AgentRuns) {
        let shared = self.clone();
        tokio::spawn(async move {
            let mut ticks: u64 = 0;
            loop {
                tokio::time::sleep(POLL).await;
                ticks += 1;
                if let Err(error) = shared.tick(&runs, ticks).await {
                    tracing::debug!(%error, "cannot reach the database for agent runs");
                }
            }
        });
    }

    async fn tick(&self, runs: &AgentRuns, ticks: u64) -> Result<(), sqlx::Error> {
        let now = now_millis();
        if runs.running() > 0 {
            // One round trip renews the heartbeats and brings back the runs another node asked to stop.
            let requested = sqlx::query(
                "UPDATE agent_run SET heartbeat_at = $1 WHERE node_id = $2 RETURNING run_id, stop_requested",
            )
            .bind(now)
            .bind(&self.node_id)
            .fetch_all(self.db.pool())
            .await?;
            for row in requested.iter().filter(|row| row.get::<i64, _>("stop_requested") == 1) {
                let run_id = row.get::<i64, _>("run_id") as u64;
                if runs.stop_run(run_id) {
                    tracing::info!(run_id, "agent run stopped at another node's request");
                }
            }
        }
        // Once a minute, the rows of nodes that died mid-run.
        if ticks.is_multiple_of(200) {
            sqlx::query("DELETE FROM agent_run WHERE heartbeat_at < $1")
                .bind(now - 12 * ALIVE.as_millis() as i64)
                .execute(self.db.pool())
                .await?;
        }
        Ok(())
    }
}
