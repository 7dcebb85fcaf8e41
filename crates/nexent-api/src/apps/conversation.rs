//! Conversation Management App (nexent-api.md §1.2): Nexent's `{code: 0, message: "success", data}`
//! envelope, integer ids, millisecond timestamps.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use nexent_core::conversation::{
    Conversation, ConversationError, HistoryMessage, Opinion, Role, SearchSource, SourceKind, SourceScope,
    StoredSearchSource,
};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath};

/// Nexent's conversation envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationResponse {
    pub code: i64,
    pub message: String,
    pub data: Value,
}

impl ConversationResponse {
    fn success(data: Value) -> Json<Self> {
        Json(Self { code: 0, message: "success".into(), data })
    }

    /// Errors the sources route reports inside the envelope with HTTP 200, as Nexent does.
    fn failure(code: i64, message: impl Into<String>) -> Json<Self> {
        Json(Self { code, message: message.into(), data: Value::Null })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateConversationRequest {
    /// Defaults to Nexent's "新对话".
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RenameConversationRequest {
    #[serde(deserialize_with = "crate::wire::integer")]
    pub conversation_id: i64,
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SourcesRequest {
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    pub conversation_id: Option<i64>,
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    pub message_id: Option<i64>,
    /// `all` (default), `image` or `search`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OpinionRequest {
    #[serde(deserialize_with = "crate::wire::integer")]
    pub message_id: i64,
    /// `Y` (like), `N` (dislike) or null (clear).
    #[serde(default)]
    pub opinion: Option<String>,
}

fn conversation_json(conversation: &Conversation) -> Value {
    json!({
        "conversation_id": conversation.id,
        "conversation_title": conversation.title,
        "create_time": conversation.create_time,
        "update_time": conversation.update_time,
    })
}

#[utoipa::path(put, path = "/api/conversation/create", tag = "conversation",
    request_body(content = CreateConversationRequest, description = "optional title"),
    responses((status = 200, body = ConversationResponse,
        description = "data: {conversation_id, conversation_title, create_time, update_time}")))]
pub async fn create_conversation(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateConversationRequest>,
) -> Result<Json<ConversationResponse>, ApiError> {
    let conversation = state.services.conversations.create(request.title.as_deref()).await?;
    Ok(ConversationResponse::success(conversation_json(&conversation)))
}

#[utoipa::path(get, path = "/api/conversation/list", tag = "conversation",
    responses((status = 200, body = ConversationResponse, description = "data: conversations, newest first")))]
pub async fn list_conversations(State(state): State<AppState>) -> Result<Json<ConversationResponse>, ApiError> {
    let conversations = state.services.conversations.list().await?;
    Ok(ConversationResponse::success(Value::Array(conversations.iter().map(conversation_json).collect())))
}

#[utoipa::path(post, path = "/api/conversation/rename", tag = "conversation",
    request_body = RenameConversationRequest,
    responses((status = 200, body = ConversationResponse, description = "data: true"),
              (status = 404, description = "unknown or deleted conversation")))]
pub async fn rename_conversation(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RenameConversationRequest>,
) -> Result<Json<ConversationResponse>, ApiError> {
    state.services.conversations.rename(request.conversation_id, &request.name).await?;
    Ok(ConversationResponse::success(Value::Bool(true)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct GenerateTitleRequest {
    #[serde(deserialize_with = "crate::wire::integer")]
    pub conversation_id: i64,
    /// `[{"role": "user"|"assistant", "content": "..."}]`
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<Value>,
}

#[utoipa::path(post, path = "/api/conversation/generate_title", tag = "conversation",
    request_body = GenerateTitleRequest,
    responses((status = 200, body = ConversationResponse, description = "data: the title (the conversation is renamed to it)"),
              (status = 404, description = "unknown or deleted conversation"),
              (status = 503, description = "no chat model, or it is busy")))]
pub async fn generate_title(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<GenerateTitleRequest>,
) -> Result<Json<ConversationResponse>, ApiError> {
    let conversations = &state.services.conversations;
    conversations.get(request.conversation_id).await?;
    let history: Vec<(String, String)> = request
        .history
        .iter()
        .filter_map(|item| Some((item["role"].as_str()?.to_owned(), item["content"].as_str()?.to_owned())))
        .collect();
    if history.iter().all(|(_, content)| content.trim().is_empty()) {
        return Err(ApiError::validation("history", "history needs at least one message with content"));
    }
    let title = nexent_core::conversation::title::generate_title(state.services.chat.as_ref(), &history).await?;
    conversations.rename(request.conversation_id, &title).await?;
    Ok(ConversationResponse::success(Value::String(title)))
}

#[utoipa::path(delete, path = "/api/conversation/{conversation_id}", tag = "conversation",
    params(("conversation_id" = i64, Path)),
    responses((status = 200, body = ConversationResponse, description = "data: true (soft delete, cascading)"),
              (status = 404, description = "unknown or deleted conversation")))]
pub async fn delete_conversation(
    State(state): State<AppState>,
    ApiPath(conversation_id): ApiPath<i64>,
) -> Result<Json<ConversationResponse>, ApiError> {
    state.services.conversations.delete(conversation_id).await?;
    Ok(ConversationResponse::success(Value::Bool(true)))
}

#[utoipa::path(get, path = "/api/conversation/{conversation_id}", tag = "conversation",
    params(("conversation_id" = i64, Path)),
    responses((status = 200, body = ConversationResponse,
        description = "data: [{conversation_id (a string), conversation_title, create_time, message: [...]}], as Nexent answers"),
              (status = 404, description = "unknown or deleted conversation")))]
pub async fn conversation_history(
    State(state): State<AppState>,
    ApiPath(conversation_id): ApiPath<i64>,
) -> Result<Json<ConversationResponse>, ApiError> {
    let history = state.services.conversations.history(conversation_id).await?;
    let messages: Vec<Value> = history.messages.iter().map(history_message_json).collect();
    // A one-element list with the id as a string: what Nexent v0.1.0's backend answers, and its client
    // reads `data[0].message` (an object here shows an empty chat there).
    Ok(ConversationResponse::success(json!([{
        "conversation_id": history.conversation.id.to_string(),
        "conversation_title": history.conversation.title,
        "create_time": history.conversation.create_time,
        "update_time": history.conversation.update_time,
        "message": messages,
    }])))
}

fn history_message_json(message: &HistoryMessage) -> Value {
    let mut item = match message.role {
        Role::User => json!({
            "role": "user",
            "message": message.content,
            "message_id": message.message_id,
            "opinion_flag": message.opinion.map(Opinion::flag),
        }),
        Role::Assistant => {
            let mut units: Vec<Value> =
                message.units.iter().map(|unit| json!({ "type": unit.kind, "content": unit.content })).collect();
            // A run stopped before its answer has none (its last unit says why).
            if !message.content.is_empty() {
                units.push(json!({ "type": "final_answer", "content": message.content }));
            }
            json!({
                "role": "assistant",
                "message": units,
                "message_id": message.message_id,
                "opinion_flag": message.opinion.map(Opinion::flag),
            })
        }
    };
    if let Some(object) = item.as_object_mut() {
        if let Some(files) = &message.minio_files {
            object.insert("minio_files".into(), files.clone());
        }
        // Always lists (the seed shows both keys on every message); Nexent's client checks their length.
        object.insert("picture".into(), message.images.iter().map(|image| json!(image.url)).collect());
        object.insert("search".into(), message.searches.iter().map(search_json).collect());
    }
    item
}

/// A search source as Nexent's history and sources routes return it (with `accurate` and `accuracy`
/// both in `score_details`: the first is what the KB tool emits, the second what Nexent's reader expects).
fn search_json(source: &SearchSource) -> Value {
    let mut score_details = serde_json::Map::new();
    if let Some(accurate) = source.score_accurate {
        score_details.insert("accurate".into(), json!(accurate));
        score_details.insert("accuracy".into(), json!(accurate));
    }
    if let Some(semantic) = source.score_semantic {
        score_details.insert("semantic".into(), json!(semantic));
    }
    let filename = (source.source_type.as_deref() == Some("file")).then(|| source.title.clone()).flatten();
    json!({
        "title": source.title,
        "text": source.text,
        "source_type": source.source_type,
        "url": source.url,
        "filename": filename,
        "published_date": source.published_date.as_deref().map(date_only),
        "score": source.score_overall,
        "score_details": score_details,
        "cite_index": source.cite_index,
        "search_type": source.search_type,
        "tool_sign": source.tool_sign,
    })
}

/// `YYYY-MM-DD` from an ISO date or date-time.
fn date_only(value: &str) -> &str {
    if value.len() >= 10 && value.is_char_boundary(10) { &value[..10] } else { value }
}

#[utoipa::path(post, path = "/api/conversation/sources", tag = "conversation",
    request_body = SourcesRequest,
    responses((status = 200, body = ConversationResponse,
        description = "data: {searches, images}; errors as code 400/404/500 in the envelope")))]
pub async fn conversation_sources(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SourcesRequest>,
) -> Json<ConversationResponse> {
    let scope = match (request.message_id, request.conversation_id) {
        (Some(message_id), _) => SourceScope::Message(message_id),
        (None, Some(conversation_id)) => SourceScope::Conversation(conversation_id),
        (None, None) => {
            return ConversationResponse::failure(400, "Must provide conversation_id or message_id parameter");
        }
    };
    let kind = SourceKind::parse(request.kind.as_deref());
    match state.services.conversations.sources(scope, kind).await {
        Ok(sources) => {
            let by_conversation = matches!(scope, SourceScope::Conversation(_));
            let searches: Vec<Value> = sources
                .searches
                .iter()
                .map(|StoredSearchSource { message_id, source }| {
                    let mut item = search_json(source);
                    if by_conversation && let Some(object) = item.as_object_mut() {
                        object.insert("message_id".into(), json!(message_id));
                    }
                    item
                })
                .collect();
            let images: Vec<Value> = sources.images.iter().map(|image| json!(image.image.url)).collect();
            ConversationResponse::success(json!({ "searches": searches, "images": images }))
        }
        Err(ConversationError::ConversationNotFound(id)) => {
            ConversationResponse::failure(404, format!("Conversation {id} does not exist"))
        }
        Err(error) => {
            tracing::error!(error = %error, "sources lookup failed");
            ConversationResponse::failure(500, crate::error::INTERNAL_ERROR_MESSAGE)
        }
    }
}

#[utoipa::path(post, path = "/api/conversation/message/update_opinion", tag = "conversation",
    request_body = OpinionRequest,
    responses((status = 200, body = ConversationResponse, description = "data: true"),
              (status = 404, description = "unknown or deleted message"),
              (status = 422, description = "opinion is not Y, N or null")))]
pub async fn update_opinion(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<OpinionRequest>,
) -> Result<Json<ConversationResponse>, ApiError> {
    let opinion = match request.opinion.as_deref() {
        None => None,
        Some(flag) => Some(Opinion::from_flag(flag).ok_or_else(|| {
            ApiError::validation("opinion", format!("opinion must be \"Y\", \"N\" or null, not {flag:?}"))
        })?),
    };
    state.services.conversations.update_opinion(request.message_id, opinion).await?;
    Ok(ConversationResponse::success(Value::Bool(true)))
}
