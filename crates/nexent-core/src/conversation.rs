//! Conversation Management: conversations, their messages, each assistant message's ordered units, and
//! the search and image sources a message cites (nexent-api.md §1.2, §2.4).
//!
//! Deletion is soft and cascades in one transaction. Message indices are assigned by the store (the next
//! index of the conversation), so concurrent appends never collide. The agent uses
//! [`ConversationStore::append_user_message`] and [`ConversationStore::append_assistant_message`].

pub mod title;
pub mod units;

use serde_json::Value;
use sqlx::Row;

use crate::db::{Database, Dialect};

use crate::clock::now_millis;
pub use units::{AssistantRecord, ImageSource, SearchSource, StreamUnit};

/// The title a conversation gets when none is given: Nexent's own default ("new conversation").
pub const DEFAULT_CONVERSATION_TITLE: &str = "新对话";
/// Longest title kept (Nexent's column is varchar(100)); longer titles are cut at a character boundary.
pub const MAX_TITLE_CHARS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("Conversation {0} does not exist or has been deleted")]
    ConversationNotFound(i64),
    #[error("Message does not exist or has been deleted")]
    MessageNotFound(i64),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: i64,
    pub title: String,
    pub create_time: i64,
    pub update_time: i64,
}

/// A like (`Y`) or a dislike (`N`); no opinion is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opinion {
    Like,
    Dislike,
}

impl Opinion {
    pub fn flag(self) -> &'static str {
        match self {
            Opinion::Like => "Y",
            Opinion::Dislike => "N",
        }
    }

    pub fn from_flag(flag: &str) -> Option<Self> {
        match flag {
            "Y" => Some(Opinion::Like),
            "N" => Some(Opinion::Dislike),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A stored search source with the message it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSearchSource {
    pub message_id: i64,
    pub source: SearchSource,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredImageSource {
    pub message_id: i64,
    pub image: ImageSource,
}

/// One message of a conversation's history, with what it cites.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryMessage {
    pub message_id: i64,
    pub message_index: i64,
    pub role: Role,
    /// The user's question, or the assistant's final answer.
    pub content: String,
    /// Assistant step units in order (empty for user messages).
    pub units: Vec<StreamUnit>,
    pub opinion: Option<Opinion>,
    /// Attachments of a user message, as the client sent them (JSON).
    pub minio_files: Option<Value>,
    pub searches: Vec<SearchSource>,
    pub images: Vec<ImageSource>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConversationHistory {
    pub conversation: Conversation,
    pub messages: Vec<HistoryMessage>,
}

/// Which sources a query asks for (`type` of POST /api/conversation/sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    All,
    Image,
    Search,
    /// Any other value: Nexent answers with both lists empty.
    Unknown,
}

impl SourceKind {
    pub fn parse(kind: Option<&str>) -> Self {
        match kind.unwrap_or("all") {
            "all" => SourceKind::All,
            "image" => SourceKind::Image,
            "search" => SourceKind::Search,
            _ => SourceKind::Unknown,
        }
    }
}

/// Whose sources to return: a message wins over a conversation when both are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceScope {
    Message(i64),
    Conversation(i64),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sources {
    pub searches: Vec<StoredSearchSource>,
    pub images: Vec<StoredImageSource>,
}

/// The conversation tables of the SQLite database.
#[derive(Clone)]
pub struct ConversationStore {
    db: Database,
}

impl ConversationStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub async fn create(&self, title: Option<&str>) -> Result<Conversation, ConversationError> {
        let title = normalise_title(title);
        let now = now_millis();
        // fetch_all runs the statement to its end, where SQLite commits: see the crate's db module.
        let ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO conversation_record (conversation_title, create_time, update_time) VALUES ($1, $2, $3)
             RETURNING conversation_id",
        )
        .bind(&title)
        .bind(now)
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        let id = ids.first().copied().ok_or(sqlx::Error::RowNotFound)?;
        Ok(Conversation { id, title, create_time: now, update_time: now })
    }

    /// Live conversations, newest first.
    pub async fn list(&self) -> Result<Vec<Conversation>, ConversationError> {
        let rows = sqlx::query(
            "SELECT conversation_id, conversation_title, create_time, update_time FROM conversation_record
             WHERE delete_flag = 'N' ORDER BY create_time DESC, conversation_id DESC",
        )
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(conversation_from_row).collect())
    }

    pub async fn get(&self, conversation_id: i64) -> Result<Conversation, ConversationError> {
        let row = sqlx::query(
            "SELECT conversation_id, conversation_title, create_time, update_time FROM conversation_record
             WHERE conversation_id = $1 AND delete_flag = 'N'",
        )
        .bind(conversation_id)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(conversation_from_row).ok_or(ConversationError::ConversationNotFound(conversation_id))
    }

    pub async fn rename(&self, conversation_id: i64, title: &str) -> Result<(), ConversationError> {
        let result = sqlx::query(
            "UPDATE conversation_record SET conversation_title = $1, update_time = $2
             WHERE conversation_id = $3 AND delete_flag = 'N'",
        )
        .bind(normalise_title(Some(title)))
        .bind(now_millis())
        .bind(conversation_id)
        .execute(self.db.pool())
        .await?;
        if result.rows_affected() == 0 {
            return Err(ConversationError::ConversationNotFound(conversation_id));
        }
        Ok(())
    }

    /// Soft-deletes a conversation with its messages, units and sources, all or nothing.
    pub async fn delete(&self, conversation_id: i64) -> Result<(), ConversationError> {
        let now = now_millis();
        let mut transaction = self.db.pool().begin().await?;
        // The first statement writes, so the transaction holds the write lock from its start.
        let result = sqlx::query(
            "UPDATE conversation_record SET delete_flag = 'Y', update_time = $1
             WHERE conversation_id = $2 AND delete_flag = 'N'",
        )
        .bind(now)
        .bind(conversation_id)
        .execute(&mut *transaction)
        .await?;
        if result.rows_affected() == 0 {
            return Err(ConversationError::ConversationNotFound(conversation_id));
        }
        for table in [
            "conversation_message",
            "conversation_message_unit",
            "conversation_source_search",
            "conversation_source_image",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET delete_flag = 'Y' WHERE conversation_id = $1 AND delete_flag = 'N'"
            )))
            .bind(conversation_id)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Appends the user's question; returns the new message's id.
    pub async fn append_user_message(
        &self,
        conversation_id: i64,
        content: &str,
        minio_files: Option<&Value>,
    ) -> Result<i64, ConversationError> {
        let mut transaction = self.db.pool().begin().await?;
        let message_id =
            insert_message(&mut transaction, self.db.dialect(), conversation_id, Role::User, content, minio_files)
                .await?;
        transaction.commit().await?;
        Ok(message_id)
    }

    /// Appends an assistant message built from the run's stream (see [`units::split_assistant_stream`]).
    pub async fn append_assistant_message(
        &self,
        conversation_id: i64,
        stream: impl IntoIterator<Item = StreamUnit>,
    ) -> Result<i64, ConversationError> {
        let record = units::split_assistant_stream(stream);
        let now = now_millis();
        let mut transaction = self.db.pool().begin().await?;
        let message_id = insert_message(
            &mut transaction,
            self.db.dialect(),
            conversation_id,
            Role::Assistant,
            &record.content,
            None,
        )
        .await?;
        for (unit_index, unit) in record.units.iter().enumerate() {
            sqlx::query(
                "INSERT INTO conversation_message_unit
                 (message_id, conversation_id, unit_index, unit_type, unit_content, create_time)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(message_id)
            .bind(conversation_id)
            .bind(unit_index as i64)
            .bind(&unit.kind)
            .bind(&unit.content)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        }
        for search in &record.searches {
            sqlx::query(
                "INSERT INTO conversation_source_search
                 (message_id, conversation_id, source_type, source_title, source_location, source_content,
                  score_overall, score_accuracy, score_semantic, published_date, cite_index, search_type,
                  tool_sign, create_time)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(message_id)
            .bind(conversation_id)
            .bind(&search.source_type)
            .bind(&search.title)
            .bind(&search.url)
            .bind(&search.text)
            .bind(search.score_overall)
            .bind(search.score_accurate)
            .bind(search.score_semantic)
            .bind(&search.published_date)
            .bind(search.cite_index)
            .bind(&search.search_type)
            .bind(&search.tool_sign)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        }
        for image in &record.images {
            sqlx::query(
                "INSERT INTO conversation_source_image
                 (message_id, conversation_id, image_url, cite_index, search_type, create_time)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(message_id)
            .bind(conversation_id)
            .bind(&image.url)
            .bind(image.cite_index)
            .bind(&image.search_type)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(message_id)
    }

    /// Sets or clears a message's like/dislike.
    pub async fn update_opinion(&self, message_id: i64, opinion: Option<Opinion>) -> Result<(), ConversationError> {
        let result = sqlx::query(
            "UPDATE conversation_message SET opinion_flag = $1, update_time = $2
             WHERE message_id = $3 AND delete_flag = 'N'",
        )
        .bind(opinion.map(Opinion::flag))
        .bind(now_millis())
        .bind(message_id)
        .execute(self.db.pool())
        .await?;
        if result.rows_affected() == 0 {
            return Err(ConversationError::MessageNotFound(message_id));
        }
        Ok(())
    }

    /// The conversation with every live message in order, each with its units and sources.
    pub async fn history(&self, conversation_id: i64) -> Result<ConversationHistory, ConversationError> {
        let conversation = self.get(conversation_id).await?;
        let message_rows = sqlx::query(
            "SELECT message_id, message_index, message_role, message_content, minio_files, opinion_flag
             FROM conversation_message WHERE conversation_id = $1 AND delete_flag = 'N'
             ORDER BY message_index, message_id",
        )
        .bind(conversation_id)
        .fetch_all(self.db.pool())
        .await?;
        let unit_rows = sqlx::query(
            "SELECT message_id, unit_type, unit_content FROM conversation_message_unit
             WHERE conversation_id = $1 AND delete_flag = 'N' ORDER BY message_id, unit_index",
        )
        .bind(conversation_id)
        .fetch_all(self.db.pool())
        .await?;
        let sources = self.sources(SourceScope::Conversation(conversation_id), SourceKind::All).await?;

        let mut messages = Vec::with_capacity(message_rows.len());
        for row in &message_rows {
            let message_id: i64 = row.get("message_id");
            let role = if row.get::<String, _>("message_role") == "user" { Role::User } else { Role::Assistant };
            let minio_files =
                row.get::<Option<String>, _>("minio_files").and_then(|text| serde_json::from_str::<Value>(&text).ok());
            messages.push(HistoryMessage {
                message_id,
                message_index: row.get("message_index"),
                role,
                content: row.get("message_content"),
                units: unit_rows
                    .iter()
                    .filter(|unit| unit.get::<i64, _>("message_id") == message_id)
                    .map(|unit| {
                        StreamUnit::new(unit.get::<String, _>("unit_type"), unit.get::<String, _>("unit_content"))
                    })
                    .collect(),
                opinion: row.get::<Option<String>, _>("opinion_flag").as_deref().and_then(Opinion::from_flag),
                minio_files,
                searches: sources
                    .searches
                    .iter()
                    .filter(|search| search.message_id == message_id)
                    .map(|search| search.source.clone())
                    .collect(),
                images: sources
                    .images
                    .iter()
                    .filter(|image| image.message_id == message_id)
                    .map(|image| image.image.clone())
                    .collect(),
            });
        }
        Ok(ConversationHistory { conversation, messages })
    }

    /// Sources of one message, or of a whole conversation. An unknown conversation is an error; an
    /// unknown message simply has no sources (as Nexent).
    pub async fn sources(&self, scope: SourceScope, kind: SourceKind) -> Result<Sources, ConversationError> {
        let (filter, id) = match scope {
            SourceScope::Message(message_id) => ("message_id", message_id),
            SourceScope::Conversation(conversation_id) => {
                self.get(conversation_id).await?;
                ("conversation_id", conversation_id)
            }
        };
        let mut sources = Sources::default();
        if matches!(kind, SourceKind::All | SourceKind::Search) {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT s.message_id, s.source_type, s.source_title, s.source_location, s.source_content,
                        s.score_overall, s.score_accuracy, s.score_semantic, s.published_date, s.cite_index,
                        s.search_type, s.tool_sign
                 FROM conversation_source_search s
                 JOIN conversation_record c ON c.conversation_id = s.conversation_id AND c.delete_flag = 'N'
                 WHERE s.{filter} = $1 AND s.delete_flag = 'N' ORDER BY s.search_id"
            )))
            .bind(id)
            .fetch_all(self.db.pool())
            .await?;
            sources.searches = rows
                .iter()
                .map(|row| StoredSearchSource {
                    message_id: row.get("message_id"),
                    source: SearchSource {
                        title: row.get("source_title"),
                        text: row.get("source_content"),
                        source_type: row.get("source_type"),
                        url: row.get("source_location"),
                        published_date: row.get("published_date"),
                        score_overall: row.get("score_overall"),
                        score_accurate: row.get("score_accuracy"),
                        score_semantic: row.get("score_semantic"),
                        cite_index: row.get("cite_index"),
                        search_type: row.get("search_type"),
                        tool_sign: row.get("tool_sign"),
                    },
                })
                .collect();
        }
        if matches!(kind, SourceKind::All | SourceKind::Image) {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT i.message_id, i.image_url, i.cite_index, i.search_type
                 FROM conversation_source_image i
                 JOIN conversation_record c ON c.conversation_id = i.conversation_id AND c.delete_flag = 'N'
                 WHERE i.{filter} = $1 AND i.delete_flag = 'N' ORDER BY i.image_id"
            )))
            .bind(id)
            .fetch_all(self.db.pool())
            .await?;
            sources.images = rows
                .iter()
                .map(|row| StoredImageSource {
                    message_id: row.get("message_id"),
                    image: ImageSource {
                        url: row.get("image_url"),
                        cite_index: row.get("cite_index"),
                        search_type: row.get("search_type"),
                    },
                })
                .collect();
        }
        Ok(sources)
    }
}

async fn insert_message(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: Dialect,
    conversation_id: i64,
    role: Role,
    content: &str,
    minio_files: Option<&Value>,
) -> Result<i64, ConversationError> {
    let now = now_millis();
    // One statement checks the conversation is live and takes the next index. On SQLite it takes the
    // database's write lock before anything is read; on PostgreSQL two transactions could read the same
    // MAX, so the conversation's row is locked first (appends to one conversation queue behind each other,
    // on any node).
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT conversation_id FROM conversation_record WHERE conversation_id = $1 FOR UPDATE")
            .bind(conversation_id)
            .fetch_optional(&mut **transaction)
            .await?;
    }
    let message_id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO conversation_message
         (conversation_id, message_index, message_role, message_content, minio_files, create_time, update_time)
         SELECT c.conversation_id,
                (SELECT COALESCE(MAX(m.message_index), -1) + 1 FROM conversation_message m
                 WHERE m.conversation_id = c.conversation_id),
                $1, $2, $3, $4, $5
         FROM conversation_record c WHERE c.conversation_id = $6 AND c.delete_flag = 'N'
         RETURNING message_id",
    )
    .bind(role.as_str())
    .bind(content)
    .bind(minio_files.map(Value::to_string))
    .bind(now)
    .bind(now)
    .bind(conversation_id)
    .fetch_optional(&mut **transaction)
    .await?;
    let Some(message_id) = message_id else {
        return Err(ConversationError::ConversationNotFound(conversation_id));
    };
    sqlx::query("UPDATE conversation_record SET update_time = $1 WHERE conversation_id = $2")
        .bind(now)
        .bind(conversation_id)
        .execute(&mut **transaction)
        .await?;
    Ok(message_id)
}

fn conversation_from_row(row: &sqlx::any::AnyRow) -> Conversation {
    Conversation {
        id: row.get("conversation_id"),
        title: row.get("conversation_title"),
        create_time: row.get("create_time"),
        update_time: row.get("update_time"),
    }
}

fn normalise_title(title: Option<&str>) -> String {
    match title.map(str::trim).filter(|title| !title.is_empty()) {
        Some(title) => title.chars().take(MAX_TITLE_CHARS).collect(),
        None => DEFAULT_CONVERSATION_TITLE.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::open_database;

    async fn store() -> (tempfile::TempDir, ConversationStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = open_database(&dir.path().join("nexent.db")).await.expect("open");
        (dir, ConversationStore::new(pool))
    }

    /// A commit that fails after the new row's id was returned (on a full disk, SQLite's WAL write at the
    /// commit) must be an error, not an id of a conversation that is not there. Here a deferred foreign key
    /// makes the commit fail: a trigger adds a row that breaks it, checked only at the commit.
    #[tokio::test]
    async fn a_create_whose_commit_fails_is_an_error_and_lists_nothing() -> Result<(), Box<dyn std::error::Error>> {
        let (_dir, store) = store().await;
        sqlx::raw_sql(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
             CREATE TRIGGER commit_fails AFTER INSERT ON conversation_record BEGIN
                 INSERT INTO child (parent_id) VALUES (42);
             END;",
        )
        .execute(store.db.pool())
        .await?;
        let created = store.create(Some("doomed")).await;
        assert!(created.is_err(), "the create answered {created:?} although its commit failed");
        assert!(store.list().await?.is_empty(), "nothing was committed, so nothing is listed");
        Ok(())
    }

    #[tokio::test]
    async fn a_saved_run_comes_back_in_history_with_its_sources() {
        let (_dir, store) = store().await;
        let conversation = store.create(None).await.expect("create");
        assert_eq!(conversation.title, DEFAULT_CONVERSATION_TITLE);
        let question = store.append_user_message(conversation.id, "What is X?", None).await.expect("user");
        let search = r#"[{"title":"X.txt","text":"X is 42","score":0.7,"score_details":{"accurate":1.0,"semantic":0.5},"cite_index":0,"tool_sign":"a"}]"#;
        let answer = store
            .append_assistant_message(
                conversation.id,
                [
                    StreamUnit::new("step_count", "1"),
                    StreamUnit::new("search_content", search),
                    StreamUnit::new("final_answer", "\nX is 42 [[a0]]"),
                ],
            )
            .await
            .expect("assistant");
        let history = store.history(conversation.id).await.expect("history");
        assert_eq!(history.messages.len(), 2);
        assert_eq!(history.messages[0].message_id, question);
        assert_eq!(history.messages[0].message_index, 0);
        assert_eq!(history.messages[1].message_id, answer);
        assert_eq!(history.messages[1].message_index, 1);
        assert_eq!(history.messages[1].content, "\nX is 42 [[a0]]");
        assert_eq!(history.messages[1].searches[0].score_accurate, Some(1.0));
        assert_eq!(history.messages[1].units, vec![StreamUnit::new("step_count", "1")]);
    }

    #[tokio::test]
    async fn delete_cascades_and_hides_everything() {
        let (_dir, store) = store().await;
        let conversation = store.create(Some("t")).await.expect("create");
        let message = store.append_user_message(conversation.id, "q", None).await.expect("user");
        store.delete(conversation.id).await.expect("delete");
        assert!(matches!(store.history(conversation.id).await, Err(ConversationError::ConversationNotFound(_))));
        assert!(matches!(store.rename(conversation.id, "x").await, Err(ConversationError::ConversationNotFound(_))));
        assert!(matches!(store.delete(conversation.id).await, Err(ConversationError::ConversationNotFound(_))));
        assert!(matches!(
            store.update_opinion(message, Some(Opinion::Like)).await,
            Err(ConversationError::MessageNotFound(_))
        ));
        assert!(matches!(
            store.append_user_message(conversation.id, "q", None).await,
            Err(ConversationError::ConversationNotFound(_))
        ));
    }

    #[tokio::test]
    async fn titles_are_trimmed_and_capped() {
        let (_dir, store) = store().await;
        let long = "é".repeat(300);
        let conversation = store.create(Some(&long)).await.expect("create");
        assert_eq!(conversation.title.chars().count(), MAX_TITLE_CHARS);
        let blank = store.create(Some("   ")).await.expect("create");
        assert_eq!(blank.title, DEFAULT_CONVERSATION_TITLE);
    }
}
