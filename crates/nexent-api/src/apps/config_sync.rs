//! Config Sync App (nexent-api.md §1.3, §5): save and load the UI's settings. `load_config` answers with
//! the union of Nexent's backend keys and the keys its frontend reads (`name` and `modelName`,
//! `secondaryLlm` and `llmSecondary`), so either generation of client finds its values.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use nexent_core::config_sync::{AppIdentity, GlobalSettings, KnowledgeSelection, ModelRole, ModelSelection};

use crate::AppState;
use crate::error::{ApiError, ApiJson};

/// The app block in either spelling: the seed document's (`name`, `description`, `icon: {type, avatarUri,
/// customUrl}`) or Nexent's client's (`appName`, `appDescription`, `iconType`, `customIconUrl`,
/// `avatarUri`). load_config answers both, so a saved-back config carries both; the client's wins.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppConfigBody {
    #[serde(default)]
    pub app_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub app_description: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub icon_type: Option<String>,
    #[serde(default)]
    pub icon: Option<IconBody>,
    #[serde(default)]
    pub custom_icon_url: Option<String>,
    #[serde(default)]
    pub avatar_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IconBody {
    #[serde(default, rename = "type")]
    pub icon_type: Option<String>,
    #[serde(default)]
    pub avatar_uri: Option<String>,
    #[serde(default)]
    pub custom_url: Option<String>,
}

impl AppConfigBody {
    /// The app's identity, each field from whichever spelling carries it.
    fn identity(self) -> Option<AppIdentity> {
        let icon = self.icon.unwrap_or_default();
        Some(AppIdentity {
            name: self.app_name.or(self.name)?,
            description: self.app_description.or(self.description).unwrap_or_default(),
            icon_type: self.icon_type.or(icon.icon_type).unwrap_or_default(),
            custom_icon_url: self.custom_icon_url.or(icon.custom_url).unwrap_or_default(),
            avatar_uri: self.avatar_uri.or(icon.avatar_uri).unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiConfigBody {
    #[serde(default)]
    pub api_key: String,
    #[serde(default)]
    pub model_url: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SingleModelConfigBody {
    /// `modelName` or `name`: load_config writes both (Nexent's readers differ), so a saved-back config
    /// carries both and they must not clash.
    #[serde(default)]
    pub model_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub api_config: Option<ApiConfigBody>,
    #[serde(default)]
    pub dimension: Option<u32>,
}

/// The model of each role; a role left out keeps its saved value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelsConfigBody {
    #[serde(default)]
    pub llm: Option<SingleModelConfigBody>,
    #[serde(default)]
    pub llm_secondary: Option<SingleModelConfigBody>,
    /// The same role under HEAD's name (load_config writes both).
    #[serde(default)]
    pub secondary_llm: Option<SingleModelConfigBody>,
    #[serde(default)]
    pub embedding: Option<SingleModelConfigBody>,
    #[serde(default)]
    pub multi_embedding: Option<SingleModelConfigBody>,
    #[serde(default)]
    pub rerank: Option<SingleModelConfigBody>,
    #[serde(default)]
    pub vlm: Option<SingleModelConfigBody>,
    #[serde(default)]
    pub stt: Option<SingleModelConfigBody>,
    #[serde(default)]
    pub tts: Option<SingleModelConfigBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataConfigBody {
    #[serde(default)]
    pub selected_kb_names: Vec<String>,
    #[serde(default)]
    pub selected_kb_models: Vec<String>,
    #[serde(default)]
    pub selected_kb_sources: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct GlobalConfigBody {
    pub app: AppConfigBody,
    pub models: ModelsConfigBody,
    pub data: DataConfigBody,
}

impl GlobalConfigBody {
    /// The settings to save; `None` when the app has no name in either spelling.
    fn into_settings(self) -> Option<GlobalSettings> {
        let body = self;
        let models = body.models;
        let mut selections = BTreeMap::new();
        for (role, model) in [
            (ModelRole::Llm, models.llm),
            (ModelRole::LlmSecondary, models.llm_secondary.or(models.secondary_llm)),
            (ModelRole::Embedding, models.embedding),
            (ModelRole::MultiEmbedding, models.multi_embedding),
            (ModelRole::Rerank, models.rerank),
            (ModelRole::Vlm, models.vlm),
            (ModelRole::Stt, models.stt),
            (ModelRole::Tts, models.tts),
        ] {
            if let Some(model) = model {
                let api =
                    model.api_config.unwrap_or(ApiConfigBody { api_key: String::new(), model_url: String::new() });
                selections.insert(
                    role,
                    ModelSelection {
                        model_name: model.model_name.or(model.name).unwrap_or_default(),
                        display_name: model.display_name,
                        api_key: api.api_key,
                        model_url: api.model_url,
                        dimension: model.dimension,
                    },
                );
            }
        }
        Some(GlobalSettings {
            app: body.app.identity()?,
            models: selections,
            data: KnowledgeSelection {
                kb_names: body.data.selected_kb_names,
                kb_models: body.data.selected_kb_models,
                kb_sources: body.data.selected_kb_sources,
            },
        })
    }
}

#[utoipa::path(post, path = "/api/config/save_config", tag = "config",
    request_body = GlobalConfigBody,
    responses((status = 200, description = r#"{"message":"Configuration saved successfully","status":"saved"}"#),
              (status = 400, description = r#"{"message":"Failed to save configuration: ...","status":"unsaved"}"#),
              (status = 422, description = "malformed body")))]
pub async fn save_config(State(state): State<AppState>, ApiJson(body): ApiJson<GlobalConfigBody>) -> Response {
    let config_sync = state.services.config_sync.clone();
    // `save` writes only the model roles the client sent; the others keep their saved values.
    let Some(mut settings) = body.into_settings() else {
        return ApiError::validation("app", "app.name (or app.appName) is required").into_response();
    };
    unmask_record_keys(&state, &mut settings).await;
    let saved = tokio::task::spawn_blocking(move || config_sync.save(&settings)).await;
    match saved {
        Ok(Ok(())) => Json(json!({ "message": "Configuration saved successfully", "status": "saved" })).into_response(),
        Ok(Err(error)) => {
            tracing::error!(error = %error, "saving the configuration failed");
            (
                StatusCode::BAD_REQUEST,
                Json(json!({ "message": format!("Failed to save configuration: {error}"), "status": "unsaved" })),
            )
                .into_response()
        }
        Err(join_error) => ApiError::internal(join_error).into_response(),
    }
}

/// Nexent's settings page fills a role's `apiKey` from the model list, which sends keys masked: a key
/// that is the mask of the chosen model record's key is that record's key. (A mask of the role's own saved
/// key is restored by `ConfigSync::save`.)
async fn unmask_record_keys(state: &AppState, settings: &mut GlobalSettings) {
    for selection in settings.models.values_mut() {
        if selection.api_key.is_empty() || selection.model_name.trim().is_empty() {
            continue;
        }
        if let Ok(record) = state.services.models.find(&selection.model_name).await
            && !record.api_key.is_empty()
            && selection.api_key == nexent_core::models::mask_key(&record.api_key)
        {
            selection.api_key = record.api_key;
        }
    }
}

fn model_json(selection: Option<&ModelSelection>) -> Value {
    let empty = ModelSelection::default();
    let selection = selection.unwrap_or(&empty);
    json!({
        "name": selection.model_name,
        "modelName": selection.model_name,
        "displayName": selection.display_name,
        // Keys leave the server only masked; save_config given the mask back keeps the stored key.
        "apiConfig": { "apiKey": nexent_core::models::mask_key(&selection.api_key), "modelUrl": selection.model_url },
        "dimension": selection.dimension,
    })
}

/// The `config` object of load_config.
pub fn settings_json(settings: &GlobalSettings) -> Value {
    let model = |role: ModelRole| model_json(settings.models.get(&role));
    json!({
        "app": {
            "name": settings.app.name,
            "description": settings.app.description,
            "icon": {
                "type": settings.app.icon_type,
                "avatarUri": settings.app.avatar_uri,
                "customUrl": settings.app.custom_icon_url,
            },
            "appName": settings.app.name,
            "appDescription": settings.app.description,
            "iconType": settings.app.icon_type,
            "customIconUrl": settings.app.custom_icon_url,
            "avatarUri": settings.app.avatar_uri,
        },
        "models": {
            "llm": model(ModelRole::Llm),
            "secondaryLlm": model(ModelRole::LlmSecondary),
            "llmSecondary": model(ModelRole::LlmSecondary),
            "embedding": model(ModelRole::Embedding),
            "multiEmbedding": model(ModelRole::MultiEmbedding),
            "rerank": model(ModelRole::Rerank),
            "vlm": model(ModelRole::Vlm),
            "stt": model(ModelRole::Stt),
            "tts": model(ModelRole::Tts),
        },
        "data": {
            "selectedKbNames": settings.data.kb_names,
            "selectedKbModels": settings.data.kb_models,
            "selectedKbSources": settings.data.kb_sources,
        },
    })
}

#[utoipa::path(get, path = "/api/config/load_config", tag = "config",
    responses((status = 200, description = r#"{"config": {app, models, data}}"#)))]
pub async fn load_config(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "config": settings_json(&state.services.config_sync.load()) }))
}

#[utoipa::path(get, path = "/api/config/get_config/selected_knowledge_base", tag = "config",
    responses((status = 200, description = r#"{"kb_names": [...]}"#)))]
pub async fn selected_knowledge_bases(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "kb_names": state.services.config_sync.selected_knowledge_bases() }))
}

#[utoipa::path(post, path = "/api/agent/reload_config", tag = "agent",
    responses((status = 200, description = r#"{"status":"success","message":"Configuration reloaded"}"#)))]
pub async fn reload_config(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let config_sync = state.services.config_sync.clone();
    tokio::task::spawn_blocking(move || config_sync.reload())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "status": "success", "message": "Configuration reloaded" })))
}
