//! The tools an agent run may call: searching the knowledge bases, reading the files attached to the
//! question, and (in [`super::mcp`]) the tools of configured MCP servers.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::machine::{FoundSource, ToolKind, ToolOutcome, ToolSpec};
use crate::chat::ToolDefinition;
use crate::ingest::preprocess::extract_text;
use crate::knowledge::{KnowledgeBase, KnowledgeError, SearchRequest};
use crate::storage::FileStorage;

pub const KNOWLEDGE_SEARCH_TOOL: &str = "knowledge_base_search";
pub const ATTACHED_FILE_TOOL: &str = "read_attached_file";

/// A tool: what the model is told about it, and how to call it. Calls run on the runtime, so they must
/// not block (engines and parsers move their work to their own threads).
pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    fn call(&self, arguments: Value) -> BoxFuture<'static, ToolOutcome>;
}

pub type SharedTool = Arc<dyn Tool>;

/// The tools of one run, found by name.
#[derive(Clone, Default)]
pub struct ToolBox {
    /// Each tool with its spec, taken once when it joins.
    tools: Vec<(ToolSpec, SharedTool)>,
}

impl ToolBox {
    pub fn push(&mut self, tool: SharedTool) {
        self.tools.push((tool.spec(), tool));
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|(spec, _)| spec.clone()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&SharedTool> {
        self.tools.iter().find(|(spec, _)| spec.definition.name == name).map(|(_, tool)| tool)
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }
}

/// Hybrid search over the selected knowledge bases (nexent-api.md §2.3: top 5, tool sign `a`).
pub struct KnowledgeSearchTool {
    pub knowledge: Arc<KnowledgeBase>,
    pub index_names: Vec<String>,
    pub top_k: i64,
}

impl Tool for KnowledgeSearchTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            definition: ToolDefinition {
                name: KNOWLEDGE_SEARCH_TOOL.into(),
                description: "Search the user's knowledge base (their own documents) for passages about a topic. \
                              Use it for any question about facts, names, numbers, products or people."
                    .into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"query": {"type": "string", "description": "what to look for, in a few words"}},
                    "required": ["query"]
                }),
            },
            kind: ToolKind::Search { sign: "a".into(), search_type: KNOWLEDGE_SEARCH_TOOL.into() },
        }
    }

    fn call(&self, arguments: Value) -> BoxFuture<'static, ToolOutcome> {
        let knowledge = self.knowledge.clone();
        let index_names = self.index_names.clone();
        let top_k = self.top_k;
        Box::pin(async move {
            let query = arguments.get("query").and_then(Value::as_str).unwrap_or_default().trim().to_owned();
            if query.is_empty() {
                return ToolOutcome::Failed("knowledge_base_search needs a non-empty \"query\"".into());
            }
            match knowledge.search(SearchRequest::hybrid(index_names, query, top_k)).await {
                Ok(outcome) => ToolOutcome::Sources(
                    outcome
                        .hits
                        .into_iter()
                        .map(|hit| FoundSource {
                            title: hit.chunk.title,
                            text: hit.chunk.content,
                            url: hit.chunk.path_or_url,
                            filename: hit.chunk.filename,
                            source_type: hit.chunk.source_type,
                            published_date: hit.chunk.create_time,
                            score: f64::from(hit.score),
                            accurate: hit.accurate.map(f64::from),
                            semantic: hit.semantic.map(f64::from),
                        })
                        .collect(),
                ),
                Err(KnowledgeError::IndexNotFound(name)) => {
                    ToolOutcome::Failed(format!("The knowledge base {name} no longer exists"))
                }
                Err(error) => ToolOutcome::Failed(format!("The knowledge base search failed: {error}")),
            }
        })
    }
}

/// A file attached to the question (`minio_files`): its stored object and the name the user sees.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachedFile {
    pub object_name: String,
    pub name: String,
}

/// Most bytes of an attachment read, and characters of its text given to the model.
const MAX_ATTACHMENT_BYTES: u64 = 64 * 1024 * 1024;
const MAX_ATTACHMENT_CHARS: usize = 6000;

/// Reads an attached file's text from storage.
pub struct AttachedFileTool {
    pub storage: FileStorage,
    pub files: Vec<AttachedFile>,
}

impl Tool for AttachedFileTool {
    fn spec(&self) -> ToolSpec {
        let names: Vec<&str> = self.files.iter().map(|file| file.name.as_str()).collect();
        ToolSpec {
            definition: ToolDefinition {
                name: ATTACHED_FILE_TOOL.into(),
                description: "Read the text of a file the user attached to the question.".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"name": {"type": "string", "enum": names}},
                    "required": ["name"]
                }),
            },
            kind: ToolKind::Reader,
        }
    }

    fn call(&self, arguments: Value) -> BoxFuture<'static, ToolOutcome> {
        let storage = self.storage.clone();
        let wanted = arguments.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let file = self.files.iter().find(|file| file.name == wanted).or(self.files.first()).cloned();
        Box::pin(async move {
            let Some(file) = file else { return ToolOutcome::Failed("No file is attached".into()) };
            let bytes = match storage.read_bounded(&file.object_name, MAX_ATTACHMENT_BYTES).await {
                Ok((_, bytes)) => bytes,
                Err(error) => return ToolOutcome::Failed(format!("Cannot read {}: {error}", file.name)),
            };
            match extract_text(file.name.clone(), bytes, MAX_ATTACHMENT_CHARS).await {
                Ok(text) => ToolOutcome::Text(format!("File {}:\n{text}", file.name)),
                Err(reason) => ToolOutcome::Failed(format!("Cannot read {}: {reason}", file.name)),
            }
        })
    }
}
