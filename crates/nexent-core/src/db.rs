//! The relational store: one SQLite file in the data dir by default (WAL), or a PostgreSQL database that
//! several nodes share; migrated at start-up either way.
//!
//! The stores (conversations, files, tasks, models, watched folders) hold a [`Database`] and never name
//! the engine: their SQL is the part both engines speak (`$1` parameters, `RETURNING`, `ON CONFLICT`,
//! integer milliseconds for time), and where the engines differ a store asks [`Database::dialect`].
//!
//! Migrations are append-only, one folder per engine (`migrations/` for SQLite, `migrations-postgres/`):
//! a released migration is never edited, a change is a new file in both. sqlx records applied migrations
//! (with checksums) in the database itself; on PostgreSQL it holds an advisory lock while migrating, so
//! several nodes may start at once.
//!
//! A write whose `RETURNING` rows are read outside a transaction is read with `fetch_all`, never
//! `fetch_one`/`fetch_optional`: on SQLite the autocommit happens when the statement runs to its end, and
//! sqlx stops after the first row and resets the statement, dropping the commit's error. A commit that
//! failed (a full disk) then looked like a success with an id, and the row was gone (found by the soak).

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor};

/// The database file's name inside the data dir.
pub const DATABASE_FILE_NAME: &str = "nexent.db";

/// Connections per node. SQLite serialises writers anyway; PostgreSQL shares its limit among the nodes.
const MAX_CONNECTIONS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("cannot open the database at {location}: {source}")]
    Open { location: String, source: sqlx::Error },
    #[error("cannot migrate the database at {location}: {source}")]
    Migrate { location: String, source: sqlx::migrate::MigrateError },
    #[error("unsupported database URL {0}: use postgres://USER:PASSWORD@HOST:PORT/DATABASE (or sqlite://PATH)")]
    Unsupported(String),
}

/// Which engine's SQL a store must write where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A migrated connection pool and the engine behind it.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
    /// Where it is, for messages (a URL's password removed).
    location: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Database").field("dialect", &self.dialect).field("location", &self.location).finish()
    }
}

impl Database {
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The file path or the URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Opens (creating if needed) the SQLite database file and applies pending migrations.
pub async fn open_database(path: &Path) -> Result<Database, DatabaseError> {
    let location = path.display().to_string();
    // The path goes through sqlx's own encoder, so any file name survives the URL the Any driver takes.
    let url = SqliteConnectOptions::new().filename(path).create_if_missing(true).to_url_lossy();
    let options = AnyConnectOptions::from_url(&url)
        .map_err(|source| DatabaseError::Open { location: location.clone(), source })?;
    connect(options, Dialect::Sqlite, location).await
}

/// Connects to the database a URL names (`postgres://…`, or `sqlite://PATH`) and applies pending
/// migrations.
pub async fn connect_database(url: &str) -> Result<Database, DatabaseError> {
    let location = redact_password(url);
    let dialect = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Dialect::Postgres
    } else if url.starts_with("sqlite:") {
        Dialect::Sqlite
    } else {
        return Err(DatabaseError::Unsupported(location));
    };
    let parsed = url::Url::parse(url).map_err(|_| DatabaseError::Unsupported(location.clone()))?;
    let options = AnyConnectOptions::from_url(&parsed)
        .map_err(|source| DatabaseError::Open { location: location.clone(), source })?;
    connect(options, dialect, location).await
}

async fn connect(options: AnyConnectOptions, dialect: Dialect, location: String) -> Result<Database, DatabaseError> {
    sqlx::any::install_default_drivers();
    let options = options.disable_statement_logging();
    let pool = AnyPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |connection, _| {
            Box::pin(async move {
                if dialect == Dialect::Sqlite {
                    // NORMAL is durable across process crashes in WAL mode (only an OS crash can lose the
                    // last commits); writers wait for each other up to the busy timeout.
                    connection
                        .execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                             PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|source| DatabaseError::Open { location: location.clone(), source })?;
    let migrated = match dialect {
        Dialect::Sqlite => sqlx::migrate!("./migrations").run(&pool).await,
        Dialect::Postgres => sqlx::migrate!("./migrations-postgres").run(&pool).await,
    };
    migrated.map_err(|source| DatabaseError::Migrate { location: location.clone(), source })?;
    Ok(Database { pool, dialect, location })
}

/// The URL as it may be shown: its password replaced by `***`.
/// What a failed database operation says about the storage beneath it, when it is the disk's fault and
/// not the request's or ours: the API answers these as 507 (full) and 503 (read-only), with what to do,
/// instead of a 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageCondition {
    Full,
    ReadOnly,
}

/// SQLite's SQLITE_FULL and SQLITE_READONLY (primary codes, under any extended code), PostgreSQL's
/// disk_full and read_only_sql_transaction, and the operating system's ENOSPC and EROFS.
pub fn storage_condition(error: &sqlx::Error) -> Option<StorageCondition> {
    match error {
        sqlx::Error::Io(io) => io_condition(io),
        sqlx::Error::Database(database) => {
            let code = database.code()?;
            match code.as_ref() {
                "53100" => return Some(StorageCondition::Full),
                "25006" => return Some(StorageCondition::ReadOnly),
                _ => {}
            }
            match code.parse::<i64>().ok()? & 0xff {
                13 => Some(StorageCondition::Full),
                8 => Some(StorageCondition::ReadOnly),
                _ => None,
            }
        }
        _ => None,
    }
}

/// ENOSPC and EROFS, by the kinds the standard library gives them.
fn io_condition(io: &std::io::Error) -> Option<StorageCondition> {
    match io.kind() {
        std::io::ErrorKind::StorageFull => Some(StorageCondition::Full),
        std::io::ErrorKind::ReadOnlyFilesystem => Some(StorageCondition::ReadOnly),
        _ => None,
    }
}

/// [`storage_condition`] for any error, looking through its causes for an I/O or database error (object
/// stores wrap the file system's errors).
pub fn storage_condition_in(error: &(dyn std::error::Error + 'static)) -> Option<StorageCondition> {
    error_chain(error).find_map(|error| {
        if let Some(condition) = error.downcast_ref::<sqlx::Error>().and_then(storage_condition) {
            return Some(condition);
        }
        if let Some(condition) = error.downcast_ref::<std::io::Error>().and_then(io_condition) {
            return Some(condition);
        }
        match os_error_in_message(error) {
            Some(28) => Some(StorageCondition::Full),
            Some(30) => Some(StorageCondition::ReadOnly),
            _ => None,
        }
    })
}

/// An error and its causes, outermost first.
pub fn error_chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |error| error.source())
}

/// The I/O error number an error's own message carries, if any. Some libraries (Tantivy) keep the I/O
/// error where `source()` does not reach it (behind an `Arc`, or only in their message); the standard
/// library's message for it reads "(os error N)".
pub fn os_error_in_message(error: &dyn std::error::Error) -> Option<i32> {
    let message = error.to_string();
    let (_, after) = message.split_once("(os error ")?;
    after.split_once(')')?.0.parse().ok()
}

pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(an unparseable URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_to_a_read_only_database_is_a_storage_condition_not_a_bug() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(DATABASE_FILE_NAME);
        open_database(&path).await.expect("create").close().await;
        let options = SqliteConnectOptions::new().filename(&path).read_only(true);
        let mut connection = options.connect().await.expect("open read-only");
        let error = sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut connection).await.expect_err("read-only");
        assert_eq!(storage_condition(&error), Some(StorageCondition::ReadOnly), "{error:?}");
        let full = sqlx::Error::Io(std::io::Error::from_raw_os_error(28));
        assert_eq!(storage_condition(&full), Some(StorageCondition::Full));
        assert_eq!(storage_condition(&sqlx::Error::RowNotFound), None);
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapped(#[source] std::io::Error);
        let wrapped = Wrapped(std::io::Error::from_raw_os_error(30));
        assert_eq!(storage_condition_in(&wrapped), Some(StorageCondition::ReadOnly));
        assert_eq!(storage_condition_in(&Wrapped(std::io::Error::other("x"))), None);
        let only_in_the_message =
            std::io::Error::other("Failed to open file for write: No space left on device (os error 28)");
        assert_eq!(storage_condition_in(&only_in_the_message), Some(StorageCondition::Full));
    }

    #[tokio::test]
    async fn opens_in_wal_mode_and_migrates_twice_without_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(DATABASE_FILE_NAME);
        let database = open_database(&path).await.expect("first open");
        assert_eq!(database.dialect(), Dialect::Sqlite);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(database.pool()).await.expect("pragma");
        assert_eq!(mode.to_lowercase(), "wal");
        let foreign_keys: i64 =
            sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(database.pool()).await.expect("pragma");
        assert_eq!(foreign_keys, 1);
        database.close().await;
        let reopened = open_database(&path).await.expect("second open");
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'conversation_%'",
        )
        .fetch_one(reopened.pool())
        .await
        .expect("count");
        assert_eq!(tables, 5);
    }

    #[tokio::test]
    async fn a_file_name_with_url_characters_opens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a dir?#%").join(DATABASE_FILE_NAME);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        let database = open_database(&path).await.expect("open");
        database.close().await;
        assert!(path.is_file(), "the database is the file named, not one the URL parser made up");
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused_by_name_and_a_password_is_never_shown() {
        let error = connect_database("mysql://user:secret@localhost/db").await.expect_err("refused");
        let message = error.to_string();
        assert!(message.contains("unsupported database URL"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        assert_eq!(
            redact_password("postgres://nexent:hunter2@127.0.0.1:5432/nexent"),
            "postgres://nexent:***@127.0.0.1:5432/nexent"
        );
    }

    #[tokio::test]
    async fn an_unreachable_postgres_is_an_open_error_without_the_password() {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let result = tokio::time::timeout(
            Duration::from_secs(60),
            connect_database("postgres://nexent:hunter2@127.0.0.1:1/nexent?connect_timeout=2"),
        )
        .await
        .expect("refused within the timeout");
        let message = result.expect_err("nothing listens").to_string();
        assert!(message.contains("cannot open the database at postgres://nexent:***@127.0.0.1:1/nexent"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
