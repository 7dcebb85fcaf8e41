//! OpenAI-compatible endpoints on the same port (beyond Nexent; what Jan, LM Studio and GPT4All users and the
//! official `openai` clients expect): `GET /v1/models`, `POST /v1/chat/completions` (streamed as SSE chunks
//! ending in `data: [DONE]`, or whole; with tools), `POST /v1/embeddings` (floats or base64). Errors have
//! OpenAI's shape (`OpenAiError`).

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use nexent_core::chat::{
    ChatEvent, ChatMessage, ChatRequest, FinishReason, Role, ToolCall, ToolChoice, ToolDefinition, Usage, collect,
};
use nexent_core::clock::now_millis;

use crate::AppState;
use crate::error::{OpenAiError, OpenAiJson};

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatCompletionBody {
    /// Any name; the loaded model answers and is named in the reply.
    #[serde(default)]
    pub model: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    /// A string or a list of strings.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub stop: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<WireTool>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub stream_options: Option<Value>,
    /// A GBNF grammar the answer must follow (llama.cpp's server takes the same field; local models only).
    #[serde(default)]
    pub grammar: Option<String>,
    /// `auto` (default), `none`, `required`, or `{"type": "function", "function": {"name": ...}}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tool_choice: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct WireMessage {
    pub role: String,
    /// A string, or a list of `{"type": "text", "text"}` parts.
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(default)]
    pub tool_calls: Vec<WireToolCall>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct WireToolCall {
    #[serde(default)]
    pub id: String,
    pub function: WireFunctionCall,
}

#[derive(Debug, Deserialize)]
pub struct WireFunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, Deserialize)]
pub struct WireTool {
    pub function: WireFunction,
}

#[derive(Debug, Deserialize)]
pub struct WireFunction {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parameters: Value,
}

fn text_of(content: &Option<Value>) -> Result<String, OpenAiError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|part| match (part["type"].as_str(), part["text"].as_str()) {
                (Some("text"), Some(text)) => Ok(text.to_owned()),
                (kind, _) => Err(OpenAiError::invalid(format!(
                    "message content parts of type {} are not supported by this model",
                    kind.unwrap_or("unknown")
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join("\n")),
        Some(other) => Err(OpenAiError::invalid(format!("message content must be a string, not {other}"))),
    }
}

impl ChatCompletionBody {
    fn into_request(self) -> Result<(ChatRequest, bool, bool), OpenAiError> {
        if self.messages.is_empty() {
            return Err(OpenAiError::invalid("messages must not be empty"));
        }
        let mut messages = Vec::with_capacity(self.messages.len());
        for message in &self.messages {
            let role = match message.role.as_str() {
                "system" | "developer" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "tool" => Role::Tool,
                other => return Err(OpenAiError::invalid(format!("unknown message role {other:?}"))),
            };
            messages.push(ChatMessage {
                role,
                content: text_of(&message.content)?,
                tool_calls: message
                    .tool_calls
                    .iter()
                    .map(|call| ToolCall {
                        id: call.id.clone(),
                        name: call.function.name.clone(),
                        arguments: call.function.arguments.clone(),
                    })
                    .collect(),
                tool_call_id: message.tool_call_id.clone(),
            });
        }
        let stop = match self.stop {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(stop)) => vec![stop],
            Some(Value::Array(stops)) => stops.iter().filter_map(|stop| stop.as_str().map(str::to_owned)).collect(),
            Some(other) => return Err(OpenAiError::invalid(format!("stop must be a string or a list, not {other}"))),
        };
        // Stop sequences are checked at every token: OpenAI's limit of four, of a sensible length.
        if stop.len() > 4 || stop.iter().any(|stop| stop.len() > 256) {
            return Err(OpenAiError::invalid("stop takes at most 4 sequences of at most 256 bytes each".to_owned()));
        }
        if let Some(temperature) = self.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            return Err(OpenAiError::invalid(format!("temperature must be between 0 and 2, not {temperature}")));
        }
        let include_usage =
            self.stream_options.as_ref().and_then(|options| options["include_usage"].as_bool()).unwrap_or(false);
        let mut tools: Vec<ToolDefinition> = self
            .tools
            .into_iter()
            .map(|tool| ToolDefinition {
                name: tool.function.name,
                description: tool.function.description,
                parameters: tool.function.parameters,
            })
            .collect();
        let tool_choice = match &self.tool_choice {
            None | Some(Value::Null) => ToolChoice::Auto,
            Some(Value::String(choice)) => match choice.as_str() {
                "auto" => ToolChoice::Auto,
                "required" => ToolChoice::Required,
                "none" => {
                    tools.clear();
                    ToolChoice::Auto
                }
                other => {
                    return Err(OpenAiError::invalid(format!(
                        "tool_choice must be auto, none or required, not {other:?}"
                    )));
                }
            },
            Some(choice) => {
                let name = choice["function"]["name"].as_str().unwrap_or_default();
                tools.retain(|tool| tool.name == name);
                if tools.is_empty() {
                    return Err(OpenAiError::invalid(format!("tool_choice names no tool of the request: {choice}")));
                }
                ToolChoice::Required
            }
        };
        if tool_choice == ToolChoice::Required && tools.is_empty() {
            return Err(OpenAiError::invalid("tool_choice \"required\" needs tools".to_owned()));
        }
        let request = ChatRequest {
            messages,
            tools,
            tool_choice,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            temperature: self.temperature,
            top_p: self.top_p,
            stop,
            grammar: self.grammar.filter(|grammar| !grammar.trim().is_empty()),
        };
        Ok((request, self.stream, include_usage))
    }
}

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
    }
}

fn tool_calls_json(calls: &[ToolCall]) -> Value {
    Value::Array(
        calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                json!({"index": index, "id": call.id, "type": "function",
                       "function": {"name": call.name, "arguments": call.arguments}})
            })
            .collect(),
    )
}

fn usage_json(usage: Usage) -> Value {
    let mut json = json!({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
           "total_tokens": usage.prompt_tokens + usage.completion_tokens});
    if usage.accepted_prediction_tokens + usage.rejected_prediction_tokens > 0 {
        // OpenAI's names for guessed-ahead tokens (its "predicted outputs"); here the guesses are ours.
        json["completion_tokens_details"] = json!({
            "accepted_prediction_tokens": usage.accepted_prediction_tokens,
            "rejected_prediction_tokens": usage.rejected_prediction_tokens,
        });
    }
    json
}

#[utoipa::path(get, path = "/v1/models", tag = "openai", operation_id = "openai_list_models",
    responses((status = 200, description = r#"{"object":"list","data":[{"id","object":"model","created","owned_by"}]}"#)))]
pub async fn list_models(State(state): State<AppState>) -> Json<Value> {
    let created = now_millis() / 1000;
    let chat = state.services.chat.model_name().to_owned();
    // `type` is ModelEngine's, so this list also serves as a hub's (§1.7).
    let mut data =
        vec![json!({"id": chat, "object": "model", "created": created, "owned_by": "nexent-local", "type": "chat"})];
    for embedder in state.services.knowledge.embedders().all() {
        data.push(json!({
            "id": embedder.model_name(), "object": "model", "created": created, "owned_by": "nexent-local", "type": "embed",
        }));
    }
    Json(json!({"object": "list", "data": data}))
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatCompletionBody,
    responses((status = 200, description = "a chat.completion, or with `stream: true` SSE chat.completion.chunk events ending in `data: [DONE]`"),
              (status = 400, description = r#"{"error": {"message","type":"invalid_request_error"}}"#),
              (status = 503, description = "no model, or the model is busy")))]
pub async fn chat_completions(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson<ChatCompletionBody>,
) -> Result<Response, OpenAiError> {
    let (request, stream, include_usage) = body.into_request()?;
    let model = state.services.chat.model_name().to_owned();
    let events = state.services.chat.chat(request)?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_millis() / 1000;
    if !stream {
        let answer = collect(events).await?;
        let mut message = json!({"role": "assistant", "content": answer.text});
        if !answer.tool_calls.is_empty() {
            message["tool_calls"] = tool_calls_json(&answer.tool_calls);
        }
        return Ok(Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(answer.reason)}],
            "usage": usage_json(answer.usage),
        }))
        .into_response());
    }
    let chunk = move |delta: Value, finish: Option<&str>, usage: Option<Usage>| {
        let mut chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage_json(usage);
        }
        Event::default().data(chunk.to_string())
    };
    let first = futures::stream::once({
        let chunk = chunk.clone();
        async move { chunk(json!({"role": "assistant", "content": ""}), None, None) }
    });
    // Dropping this stream (the client went away) drops the model's stream, which stops the generation.
    let body = events.map(move |event| match event {
        Ok(ChatEvent::Text(text)) => chunk(json!({"content": text}), None, None),
        Ok(ChatEvent::ToolCalls(calls)) => chunk(json!({"tool_calls": tool_calls_json(&calls)}), None, None),
        Ok(ChatEvent::Finished { reason, usage }) => {
            chunk(json!({}), Some(finish_reason(reason)), include_usage.then_some(usage))
        }
        Err(error) => {
            Event::default().data(json!({"error": {"message": error.to_string(), "type": "server_error"}}).to_string())
        }
    });
    let done = futures::stream::once(async { Event::default().data("[DONE]") });
    let events = first.chain(body).chain(done).map(Ok::<_, Infallible>);
    Ok(Sse::new(events).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbeddingsBody {
    /// A string or a list of strings.
    #[schema(value_type = Object)]
    pub input: Value,
    #[serde(default)]
    pub model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32, as OpenAI's clients ask for by default).
    #[serde(default)]
    pub encoding_format: Option<String>,
}

#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", request_body = EmbeddingsBody,
    responses((status = 200, description = r#"{"object":"list","data":[{"object":"embedding","index","embedding"}],"model","usage"}"#),
              (status = 400, description = "bad input")))]
pub async fn embeddings(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson<EmbeddingsBody>,
) -> Result<Json<Value>, OpenAiError> {
    let texts: Vec<String> = match body.input {
        Value::String(text) => vec![text],
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                _ => Err(OpenAiError::invalid(
                    "input must be a string or a list of strings (token arrays are not supported)",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(OpenAiError::invalid("input must be a string or a list of strings")),
    };
    if texts.is_empty() || texts.len() > 2048 {
        return Err(OpenAiError::invalid("input must hold between 1 and 2048 strings"));
    }
    if texts.iter().any(|text| text.trim().is_empty()) {
        return Err(OpenAiError::invalid("input strings must not be empty"));
    }
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(OpenAiError::invalid(format!("encoding_format must be float or base64, not {other}")));
        }
    };
    // A model the server runs is used by name; any other name (clients send OpenAI's) gets the default.
    let embedders = state.services.knowledge.embedders();
    let embedder =
        body.model.as_deref().and_then(|name| embedders.get(name)).unwrap_or(embedders.default_embedder()).clone();
    let tokens: usize = texts.iter().map(|text| text.split_whitespace().count()).sum();
    let vectors =
        embedder.embed(texts, nexent_core::knowledge::TextKind::Query).await.map_err(|error| match error {
            nexent_core::knowledge::embedder::EmbedError::Busy => OpenAiError::busy(error.to_string()),
            other => OpenAiError::unavailable(other.to_string()),
        })?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|value| value.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list", "data": data, "model": embedder.model_name(),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}
