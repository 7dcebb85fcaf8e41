//! Nexent Local's domain library.
//!
//! Everything here is free of HTTP and UI: the api crate converts these types to Nexent's wire shapes, and
//! the binaries wire engines into the seams. Modules:
//! - [`agent`]: the agent: a state machine, its driver, tools (knowledge search, attachments, MCP), runs.
//! - [`chat`]: the chat-model seam (messages, tools, streamed events, stop sequences).
//! - [`disk`]: the free-space reserve below which heavy writes (uploads, indexing) are refused.
//! - [`db`]: the SQLite database file (WAL) and its append-only migrations.
//! - [`conversation`]: Conversation Management: conversations, messages, ordered units, sources.
//! - [`config_sync`]: Config Sync: Nexent's settings persisted as a dotenv file, environment overrides.
//! - [`fetch`]: an HTTP fetcher that refuses private addresses (every redirect hop, after DNS resolution).
//! - [`image_proxy`]: the Proxy App's logic: fetch or decode an image, verify it, return its bytes.
//! - [`ingest`]: Data Process: the persistent task queue, parsers and chunking that feed knowledge bases.
//! - [`language`]: whether a text is Chinese (answer language, voice per sentence, matching quotes).
//! - [`knowledge`]: knowledge bases: a Tantivy keyword + vector index each; accurate, semantic, hybrid search.
//! - [`model_engine`]: a ModelEngine hub (OpenAI-compatible router at MODEL_ENGINE_HOST).
//! - [`models`]: Model Management: model records, local GGUF files, health checks through a connector.
//! - [`process`]: child processes (MCP servers, the speech-to-text helper) that end with the server.
//! - [`voice`]: the Voice App: speech-to-text and text-to-speech seams, voice activity, sentence streaming.
//! - [`storage`]: File Management's object storage (`object_store`), records, signed expiring URLs.
//! - [`watch`]: watched folders: files kept ingested into a knowledge base, reconciled by content hash.
//! - [`services`]: opens all of the above on a data dir, the one wiring point for every binary.

pub mod agent;
pub mod chat;
pub mod clock;
pub mod config_sync;
pub mod conversation;
pub mod db;
pub mod disk;
pub mod fetch;
pub mod image_proxy;
pub mod ingest;
pub mod knowledge;
pub mod language;
pub mod model_engine;
pub mod models;
pub mod process;
pub mod services;
pub mod storage;
pub mod sync;
pub mod voice;
pub mod watch;
