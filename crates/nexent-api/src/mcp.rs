//! Our own MCP server at `/mcp` (streamable HTTP, rmcp): `knowledge_base_search` and `list_indices`, so
//! other agents and MCP clients on this machine can search the user's knowledge bases.
//!
//! The server's own Host / Origin / token checks (`security::enforce`) run first; rmcp's allowlist is set
//! to the same hosts and origins as well (its fix for DNS rebinding, CVE-2026-42559), so neither layer
//! alone stands between a web page and the user's documents.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use nexent_core::knowledge::{KnowledgeBase, SearchRequest};
use nexent_core::services::Services;

use crate::security::SecurityPolicy;

const SEARCH_TOOL: &str = "knowledge_base_search";
const LIST_TOOL: &str = "list_indices";

/// The MCP server's handler: our knowledge bases as tools.
#[derive(Clone)]
pub struct KnowledgeMcp {
    services: Services,
}

fn object(schema: Value) -> Arc<serde_json::Map<String, Value>> {
    Arc::new(schema.as_object().cloned().unwrap_or_default())
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            SEARCH_TOOL,
            "Hybrid (keyword + semantic) search over the user's knowledge bases. Returns the best passages with \
             their title, file, score and text.",
            object(json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "what to look for"},
                    "index_names": {"type": "array", "items": {"type": "string"},
                                    "description": "knowledge bases to search (default: the selected ones, else all)"},
                    "top_k": {"type": "integer", "minimum": 1, "maximum": 50, "description": "results (default 5)"}
                },
                "required": ["query"]
            })),
        ),
        Tool::new(
            LIST_TOOL,
            "The user's knowledge bases with their document and chunk counts.",
            object(json!({"type": "object", "properties": {}})),
        ),
    ]
}

fn text_result(value: &Value) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(value.to_string())]).into()
}

fn error_result(message: String) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message)]).into()
}

impl KnowledgeMcp {
    async fn search(&self, arguments: &serde_json::Map<String, Value>) -> CallToolResponse {
        let knowledge: &KnowledgeBase = &self.services.knowledge;
        let query = arguments.get("query").and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut index_names: Vec<String> = arguments
            .get("index_names")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        if index_names.is_empty() {
            let existing = match knowledge.list_indices("*").await {
                Ok(names) => names,
                Err(error) => return error_result(error.to_string()),
            };
            index_names = self.services.config_sync.selected_knowledge_bases();
            index_names.retain(|name| existing.contains(name));
            if index_names.is_empty() {
                index_names = existing;
            }
        }
        let top_k = arguments.get("top_k").and_then(Value::as_i64).unwrap_or(5);
        match knowledge.search(SearchRequest::hybrid(index_names, query, top_k)).await {
            Ok(outcome) => {
                let results: Vec<Value> = outcome
                    .hits
                    .iter()
                    .map(|hit| {
                        json!({
                            "index": hit.index, "title": hit.chunk.title, "filename": hit.chunk.filename,
                            "path_or_url": hit.chunk.path_or_url, "score": hit.score,
                            "score_details": {"accurate": hit.accurate, "semantic": hit.semantic},
                            "text": hit.chunk.content,
                        })
                    })
                    .collect();
                text_result(&json!({"results": results, "query_time_ms": outcome.query_time_ms}))
            }
            // The client's mistake (empty query, unknown index, bad top_k): a tool error it can read.
            Err(error) => error_result(error.to_string()),
        }
    }

    async fn list(&self) -> CallToolResponse {
        let knowledge = &self.services.knowledge;
        let mut indices = Vec::new();
        let names = match knowledge.list_indices("*").await {
            Ok(names) => names,
            Err(error) => return error_result(error.to_string()),
        };
        for name in names {
            let entry = match knowledge.stats_and_files(&name, 0).await {
                Ok((stats, _)) => json!({"name": name, "doc_count": stats.doc_count, "chunk_count": stats.chunk_count}),
                Err(_) => json!({"name": name}),
            };
            indices.push(entry);
        }
        text_result(&json!({"indices": indices}))
    }
}

impl ServerHandler for KnowledgeMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("nexent-local", env!("CARGO_PKG_VERSION")))
            .with_instructions("Search the user's local knowledge bases (Nexent Local).")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.unwrap_or_default();
        match request.name.as_ref() {
            SEARCH_TOOL => Ok(self.search(&arguments).await),
            LIST_TOOL => Ok(self.list().await),
            other => Err(ErrorData::invalid_params(format!("no tool named {other}"), None)),
        }
    }
}

/// The `/mcp` service for `services`, with rmcp's Host and Origin allowlists set from `policy`.
pub fn service(
    services: Services,
    policy: &SecurityPolicy,
) -> StreamableHttpService<KnowledgeMcp, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default();
    if policy.allowed_hosts.iter().any(|host| host == "*") {
        config = config.disable_allowed_hosts();
    } else {
        config = config.with_allowed_hosts(policy.allowed_hosts.clone());
    }
    let mut origins: Vec<String> = policy
        .allowed_hosts
        .iter()
        .filter(|host| host.as_str() != "*")
        .flat_map(|host| {
            let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.clone() };
            [format!("http://{host}:{}", policy.port), format!("https://{host}:{}", policy.port)]
        })
        .collect();
    origins.extend(policy.allowed_origins.iter().cloned());
    config = config.with_allowed_origins(origins).enforce_origin_validation();
    StreamableHttpService::new(move || Ok(KnowledgeMcp { services: services.clone() }), Default::default(), config)
}
