//! The relational store: one SQLite file in the data dir, opened in WAL mode, migrated at start-up.
//!
//! Migrations live beside this crate in `migrations/` and are append-only: a released migration is never
//! edited, a change is a new file. sqlx records applied migrations (with checksums) in the database itself.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// The database file's name inside the data dir.
pub const DATABASE_FILE_NAME: &str = "nexent.db";

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("cannot open the database at {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot migrate the database at {path}: {source}")]
    Migrate { path: String, source: sqlx::migrate::MigrateError },
}

/// Opens (creating if needed) the database file and applies pending migrations.
pub async fn open_database(path: &Path) -> Result<SqlitePool, DatabaseError> {
    let display_path = path.display().to_string();
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{display_path}"))
        .map_err(|source| DatabaseError::Open { path: display_path.clone(), source })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable across process crashes in WAL mode (only an OS crash can lose the last commits).
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .map_err(|source| DatabaseError::Open { path: display_path.clone(), source })?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|source| DatabaseError::Migrate { path: display_path, source })?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_in_wal_mode_and_migrates_twice_without_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(DATABASE_FILE_NAME);
        let pool = open_database(&path).await.expect("first open");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.expect("pragma");
        assert_eq!(mode.to_lowercase(), "wal");
        pool.close().await;
        let reopened = open_database(&path).await.expect("second open");
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'conversation_%'",
        )
        .fetch_one(&reopened)
        .await
        .expect("count");
        assert_eq!(tables, 5);
    }
}
