//! Model Management App (nexent-api.md §1.6) and the ModelEngine App (§1.7). Both answer Nexent's envelope
//! `{"code", "message", "data"}` with HTTP 200, the outcome in `code` (404, 409, 408, ...), as Nexent's clients
//! expect; only malformed requests are HTTP 422.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use nexent_core::clock::format_iso_utc;
use nexent_core::model_engine::{HubError, ModelEngineHub, our_model_type};
use nexent_core::models::{ConnectStatus, ModelError, ModelInput, ModelRecord, mask_key};

use crate::AppState;
use crate::error::{ApiError, ApiJson, Params};

fn envelope(code: u16, message: impl Into<String>, data: Value) -> Json<Value> {
    Json(json!({ "code": code, "message": message.into(), "data": data }))
}

/// Model errors in the envelope: the outcome is in `code`.
fn model_failure(error: ModelError, data: Value) -> Result<Json<Value>, ApiError> {
    match error {
        ModelError::DisplayNameTaken(_) => Ok(envelope(409, error.to_string(), data)),
        ModelError::NotFound(_) => Ok(envelope(404, error.to_string(), data)),
        ModelError::Invalid(_) => Ok(envelope(400, error.to_string(), data)),
        ModelError::Database(cause) => Err(crate::error::storage_error(cause)),
    }
}

fn record_json(record: &ModelRecord) -> Value {
    json!({
        "model_id": record.model_id,
        "model_repo": record.model_repo,
        "model_name": record.full_name(),
        "model_factory": record.model_factory,
        "model_type": record.model_type,
        "api_key": mask_key(&record.api_key),
        "base_url": record.base_url,
        "max_tokens": record.max_tokens,
        "used_token": record.used_token,
        "display_name": record.display_name,
        "connect_status": ConnectStatus::wire(&record.connect_status),
        "create_time": format_iso_utc(record.create_time_ms),
        "update_time": format_iso_utc(record.update_time_ms),
        "delete_flag": "N",
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ModelRequest {
    #[serde(default)]
    pub model_factory: Option<String>,
    pub model_name: String,
    /// `llm`, `embedding`, `rerank`, `vlm`, `stt` or `tts`; `llm` on create when absent, kept on update.
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    pub max_tokens: Option<i64>,
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    pub used_token: Option<i64>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub connect_status: Option<String>,
}

impl From<ModelRequest> for ModelInput {
    fn from(request: ModelRequest) -> Self {
        ModelInput {
            model_factory: request.model_factory,
            model_name: request.model_name,
            model_type: request.model_type,
            api_key: request.api_key,
            base_url: request.base_url,
            max_tokens: request.max_tokens,
            used_token: request.used_token,
            display_name: request.display_name,
            connect_status: request.connect_status,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ModelNameBody {
    pub model_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConnectStatusBody {
    pub model_name: String,
    pub connect_status: String,
}

#[utoipa::path(post, path = "/api/model/create", tag = "model", request_body = ModelRequest,
    responses((status = 200, description = r#"code 200 "Model {name} created successfully"; 409 display name in use"#)))]
pub async fn create_model(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ModelRequest>,
) -> Result<Json<Value>, ApiError> {
    match state.services.models.create(request.into()).await {
        Ok(record) => Ok(envelope(200, format!("Model {} created successfully", record.full_name()), Value::Null)),
        Err(error) => model_failure(error, Value::Null),
    }
}

#[utoipa::path(post, path = "/api/model/update", tag = "model", request_body = ModelRequest,
    responses((status = 200, description = r#"code 200 data {"model_name"}; 404 unknown; 409 display name in use"#)))]
pub async fn update_model(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ModelRequest>,
) -> Result<Json<Value>, ApiError> {
    match state.services.models.update(request.into()).await {
        Ok(record) => Ok(envelope(200, "Model updated successfully", json!({ "model_name": record.full_name() }))),
        Err(error) => model_failure(error, Value::Null),
    }
}

#[utoipa::path(post, path = "/api/model/delete", tag = "model", request_body = ModelNameBody,
    responses((status = 200, description = r#"code 200 data {"model_name"}; 404 unknown"#)))]
pub async fn delete_model(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ModelNameBody>,
) -> Result<Json<Value>, ApiError> {
    match state.services.models.delete(&body.model_name).await {
        Ok(name) => Ok(envelope(200, format!("Model {name} deleted successfully"), json!({ "model_name": name }))),
        Err(error) => model_failure(error, Value::Null),
    }
}

#[utoipa::path(get, path = "/api/model/list", tag = "model",
    responses((status = 200, description = "data: every model record (keys masked), local GGUF files with model_factory \"local\"")))]
pub async fn list_models(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.services.models.list().await {
        Ok(records) => Ok(envelope(
            200,
            "Successfully retrieved model list",
            Value::Array(records.iter().map(record_json).collect()),
        )),
        Err(error) => model_failure(error, json!([])),
    }
}

fn required_name(params: &Params) -> Result<String, ApiError> {
    params
        .text("model_name")
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| ApiError::validation("model_name", "Field required: model_name"))
}

#[utoipa::path(get, path = "/api/model/healthcheck", tag = "model", params(("model_name" = String, Query)),
    responses((status = 200, description = r#"data {"connectivity","status","desc","connect_status"}; code 404 for an unknown model"#)))]
pub async fn health_check(State(state): State<AppState>, params: Params) -> Result<Json<Value>, ApiError> {
    let name = required_name(&params)?;
    match state.services.models.health_check(&name).await {
        Ok(report) => {
            let outcome = if report.connectivity { "successful" } else { "failed" };
            Ok(envelope(
                200,
                format!("Model {name} connectivity {outcome}"),
                json!({
                    "connectivity": report.connectivity,
                    "status": if report.connectivity { "Connected" } else { "Disconnected" },
                    "desc": report.desc,
                    "connect_status": report.status.nexent_label(),
                }),
            ))
        }
        Err(error) => {
            let desc = error.to_string();
            model_failure(
                error,
                json!({ "connectivity": false, "status": "Disconnected", "desc": desc, "connect_status": "" }),
            )
        }
    }
}

/// The same check sent as POST, as Nexent's client does (`verifyModel`; Nexent's backend answered GET only, so its check always failed).
#[utoipa::path(post, path = "/api/model/healthcheck", tag = "model", params(("model_name" = String, Query)),
    responses((status = 200, description = "as the GET")))]
pub async fn health_check_post(state: State<AppState>, params: Params) -> Result<Json<Value>, ApiError> {
    health_check(state, params).await
}

#[utoipa::path(get, path = "/api/model/get_connect_status", tag = "model", params(("model_name" = String, Query)),
    responses((status = 200, description = r#"data {"model_name","connect_status"}; code 404 for an unknown model"#)))]
pub async fn get_connect_status(State(state): State<AppState>, params: Params) -> Result<Json<Value>, ApiError> {
    let name = required_name(&params)?;
    match state.services.models.find(&name).await {
        Ok(record) => Ok(envelope(
            200,
            "Successfully retrieved connection status",
            json!({ "model_name": record.full_name(), "connect_status": ConnectStatus::wire(&record.connect_status) }),
        )),
        Err(error) => model_failure(error, json!({ "connect_status": "" })),
    }
}

#[utoipa::path(post, path = "/api/model/update_connect_status", tag = "model", request_body = ConnectStatusBody,
    responses((status = 200, description = r#"data {"model_name","connect_status"}; code 404 for an unknown model"#)))]
pub async fn update_connect_status(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ConnectStatusBody>,
) -> Result<Json<Value>, ApiError> {
    let Some(status) = ConnectStatus::parse(&body.connect_status) else {
        return Err(ApiError::validation(
            "connect_status",
            format!(
                "Unknown connect_status {:?}: use 未检测, 检测中, 可用 or 不可用 (or not_detected, detecting, available, unavailable)",
                body.connect_status
            ),
        ));
    };
    match state.services.models.set_status(&body.model_name, status).await {
        Ok(record) => Ok(envelope(
            200,
            "Successfully updated connection status",
            json!({ "model_name": record.full_name(), "connect_status": ConnectStatus::wire(&record.connect_status) }),
        )),
        Err(error) => model_failure(error, json!({ "connect_status": "" })),
    }
}

// ---------------------------------------------------------------------------------------------------------
// ModelEngine (§1.7)

/// The configured ModelEngine, or else this server's own engine (its `/open/router/v1` routes serve the
/// local chat and embedding models in ModelEngine's shape), so Nexent's client shows the local models as
/// its official ones and its engine as connected, reached the way a remote engine is.
fn hub(state: &AppState) -> Result<ModelEngineHub, HubError> {
    let config = &state.services.config_sync;
    let host = config.get("MODEL_ENGINE_HOST").unwrap_or_default();
    match (&state.own_url, host.trim().is_empty()) {
        (Some(own_url), true) => ModelEngineHub::new(own_url, state.security.api_token.clone()),
        _ => ModelEngineHub::new(&host, config.get("MODEL_ENGINE_APIKEY")),
    }
}

fn timeout_of(params: &Params) -> Result<Duration, ApiError> {
    let seconds = params.number("timeout")?.unwrap_or(2.0);
    if !(0.1..=300.0).contains(&seconds) {
        return Err(ApiError::validation("timeout", "timeout must be between 0.1 and 300 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn hub_failure(error: &HubError) -> u16 {
    match error {
        HubError::Timeout => 408,
        HubError::Status(status) => *status,
        HubError::NotConfigured | HubError::Failed(_) => 500,
    }
}

#[utoipa::path(get, path = "/api/me/model/list", tag = "me",
    params(("type" = Option<String>, Query, description = "chat/embed/asr/tts/rerank/vlm, or ours: llm/embedding/stt"),
           ("timeout" = Option<f64>, Query, description = "seconds, default 2")),
    responses((status = 200, description = "data: the hub's models (code 404 when none has the type)")))]
pub async fn me_list(State(state): State<AppState>, params: Params) -> Result<Json<Value>, ApiError> {
    let timeout = timeout_of(&params)?;
    let wanted = params.text("type").unwrap_or_default();
    let hub = match hub(&state) {
        Ok(hub) => hub,
        Err(error) => return Ok(envelope(500, format!("Failed to get model list: {error}"), json!([]))),
    };
    match hub.models(timeout).await {
        Ok(models) => {
            if wanted.is_empty() {
                return Ok(envelope(200, "Successfully retrieved", Value::Array(models)));
            }
            let kind = |item: &Value| item["type"].as_str().unwrap_or_default().to_owned();
            let matching: Vec<Value> = models
                .iter()
                .filter(|item| kind(item) == wanted || our_model_type(&kind(item)) == wanted)
                .cloned()
                .collect();
            if matching.is_empty() {
                let mut available: Vec<String> = models.iter().map(kind).collect();
                available.sort();
                available.dedup();
                return Ok(envelope(
                    404,
                    format!("No models found with type '{wanted}'. Available types: {{{}}}", available.join(", ")),
                    json!([]),
                ));
            }
            Ok(envelope(200, "Successfully retrieved", Value::Array(matching)))
        }
        Err(error) => Ok(envelope(hub_failure(&error), format!("Failed to get model list: {error}"), json!([]))),
    }
}

#[utoipa::path(get, path = "/api/me/healthcheck", tag = "me",
    params(("timeout" = Option<f64>, Query, description = "seconds, default 2")),
    responses((status = 200, description = r#"data {"status","desc","connect_status"}; code 408 on timeout"#)))]
pub async fn me_health(State(state): State<AppState>, params: Params) -> Result<Json<Value>, ApiError> {
    let timeout = timeout_of(&params)?;
    let outcome = match hub(&state) {
        Ok(hub) => hub.models(timeout).await.map(|_| ()),
        Err(error) => Err(error),
    };
    Ok(match outcome {
        Ok(()) => envelope(
            200,
            "Connection successful",
            json!({"status": "Connected", "desc": "Connection successful", "connect_status": ConnectStatus::Available.nexent_label()}),
        ),
        Err(error) => envelope(
            hub_failure(&error),
            error.to_string(),
            json!({"status": "Disconnected", "desc": error.to_string(), "connect_status": ConnectStatus::Unavailable.nexent_label()}),
        ),
    })
}

#[utoipa::path(get, path = "/api/me/model/healthcheck", tag = "me",
    params(("model_name" = String, Query), ("timeout" = Option<f64>, Query, description = "seconds, default 30")),
    responses((status = 200, description = r#"data {"connectivity","message","connect_status"}; code 404 unknown model"#)))]
pub async fn me_model_health(State(state): State<AppState>, params: Params) -> Result<Json<Value>, ApiError> {
    let name = required_name(&params)?;
    let timeout = if params.0.contains_key("timeout") { timeout_of(&params)? } else { Duration::from_secs(30) };
    let failed = |code: u16, message: String| {
        envelope(
            code,
            message.clone(),
            json!({"connectivity": false, "status": "Disconnected", "desc": message, "message": message, "connect_status": ConnectStatus::Unavailable.nexent_label()}),
        )
    };
    let hub = match hub(&state) {
        Ok(hub) => hub,
        Err(error) => return Ok(failed(500, error.to_string())),
    };
    let models = match hub.models(timeout).await {
        Ok(models) => models,
        Err(error) => return Ok(failed(hub_failure(&error), error.to_string())),
    };
    let Some(item) = models.iter().find(|item| item["id"].as_str() == Some(name.as_str())) else {
        return Ok(failed(404, "Specified model not found".into()));
    };
    let kind = our_model_type(item["type"].as_str().unwrap_or_default()).to_owned();
    if !matches!(kind.as_str(), "llm" | "vlm" | "embedding") {
        return Ok(failed(400, format!("Health check not supported for {kind} type models")));
    }
    Ok(match hub.check_model(item, timeout).await {
        Ok(()) => {
            let message = format!("Model {name} is reachable");
            envelope(
                200,
                message.clone(),
                json!({"connectivity": true, "status": "Connected", "desc": message, "message": message, "connect_status": ConnectStatus::Available.nexent_label()}),
            )
        }
        Err(error) => failed(hub_failure(&error), error.to_string()),
    })
}

/// The same check sent as POST, as Nexent's client does (`verifyModel`).
#[utoipa::path(post, path = "/api/me/model/healthcheck", tag = "me", params(("model_name" = String, Query)),
    responses((status = 200, description = "as the GET")))]
pub async fn me_model_health_post(state: State<AppState>, params: Params) -> Result<Json<Value>, ApiError> {
    me_model_health(state, params).await
}
