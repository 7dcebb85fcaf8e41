//! Agent App (nexent-api.md §1.1, §2): `POST /api/agent/run` streams the run as `data: {"type","content"}`
//! events; `GET /api/agent/stop/{conversation_id}` stops it. (`POST /api/agent/reload_config` lives with
//! Config Sync, whose file it rereads.)

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use nexent_core::agent::{HistoryTurn, Language, RunRequest, StopReach};
use nexent_core::chat::Role;

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::sse::event_stream;

#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentRequest {
    pub query: String,
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    pub conversation_id: Option<i64>,
    /// Unused, as in Nexent.
    #[serde(default)]
    pub is_set: bool,
    /// Earlier turns `{role, content}`, given to the model.
    #[serde(default)]
    pub history: Option<Vec<Value>>,
    /// Attachments `{object_name, name, type, size, url?, description?}`.
    #[serde(default)]
    pub minio_files: Option<Vec<Value>>,
    /// Step labels: `en` (default) or `zh`.
    #[serde(default)]
    pub language: Option<String>,
    /// Ours, not Nexent's: the knowledge bases to search instead of Config Sync's selection (each must
    /// exist, else 404).
    #[serde(default)]
    pub knowledge_bases: Option<Vec<String>>,
}

#[utoipa::path(post, path = "/api/agent/run", tag = "agent", request_body = AgentRequest,
    responses((status = 200, content_type = "text/event-stream",
               description = r#"`data: {"type": ..., "content": "..."}` per message (§2.2), until the run ends"#),
              (status = 404, description = "unknown conversation or knowledge base"),
              (status = 422, description = "empty query"),
              (status = 503, description = "the agent is at its limit of runs")))]
pub async fn run_agent(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AgentRequest>,
) -> Result<Response, ApiError> {
    let history = request
        .history
        .unwrap_or_default()
        .iter()
        .filter_map(|item| {
            let role = match item.get("role")?.as_str()? {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                _ => return None,
            };
            Some(HistoryTurn { role, content: item.get("content")?.as_str()?.to_owned() })
        })
        .collect();
    let run = state
        .services
        .agent
        .start(RunRequest {
            query: request.query,
            conversation_id: request.conversation_id,
            history,
            minio_files: request.minio_files.map(Value::Array),
            language: request.language.as_deref().map(Language::parse),
            knowledge_bases: request.knowledge_bases,
        })
        .await?;
    let mut response = event_stream(run.messages).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", "text/event-stream; charset=utf-8".parse().expect("valid header"));
    headers.insert("cache-control", "no-cache".parse().expect("valid header"));
    headers.insert("x-conversation-id", run.conversation_id.into());
    Ok(response)
}

#[utoipa::path(get, path = "/api/agent/stop/{conversation_id}", tag = "agent",
    params(("conversation_id" = i64, Path)),
    responses((status = 200, description = r#"{"status":"success","message":...}: the run stops, its stream ends with an error message, what it produced is saved"#),
              (status = 404, description = "no run in progress for this conversation")))]
pub async fn stop_agent(
    State(state): State<AppState>,
    ApiPath(conversation_id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let message = match state.services.agent.stop(conversation_id).await? {
        StopReach::Stopped => format!("Agent run of conversation {conversation_id} stopped"),
        StopReach::StoppedElsewhere => {
            format!("Agent run of conversation {conversation_id} stopped by the node that was running it")
        }
        StopReach::Requested => format!(
            "Agent run of conversation {conversation_id} runs on another node, which was asked to stop it and has not yet"
        ),
        StopReach::NotRunning => {
            return Err(ApiError::NotFound(format!("No agent run in progress for conversation {conversation_id}")));
        }
    };
    Ok(Json(json!({"status": "success", "message": message})))
}
