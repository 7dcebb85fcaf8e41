//! Every route of the server, in one list, with the OpenAPI document generated from the handlers.

use std::sync::Arc;

use axum::Router;
use axum::http::Request;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;
use crate::apps::{
    agent, base, config_sync, conversation, data_process, file_management, knowledge, model_management, openai, proxy,
    voice, watched_folders,
};
use crate::security;

#[derive(OpenApi)]
#[openapi(
    info(title = "Nexent Local", description = "Nexent Community's API, served locally by one process."),
    tags(
        (name = "base"), (name = "conversation", description = "Conversation Management App"),
        (name = "config", description = "Config Sync App"), (name = "agent", description = "Agent App"),
        (name = "proxy", description = "Image Proxy App"),
        (name = "knowledge", description = "Elasticsearch App (knowledge bases)"),
        (name = "file", description = "File Management App"),
        (name = "data_process", description = "Data Process App (ingestion tasks)"),
        (name = "voice", description = "Voice App (local speech-to-text and text-to-speech)"),
    )
)]
struct ApiDoc;

/// The routes and their OpenAPI description.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        // Base App
        .routes(routes!(base::health))
        // Agent App
        .routes(routes!(agent::run_agent))
        .routes(routes!(agent::stop_agent))
        // Conversation Management App
        .routes(routes!(conversation::create_conversation))
        .routes(routes!(conversation::list_conversations))
        .routes(routes!(conversation::rename_conversation))
        .routes(routes!(conversation::generate_title))
        .routes(routes!(conversation::conversation_history, conversation::delete_conversation))
        .routes(routes!(conversation::conversation_sources))
        .routes(routes!(conversation::update_opinion))
        // Config Sync App
        .routes(routes!(config_sync::save_config))
        .routes(routes!(config_sync::load_config))
        .routes(routes!(config_sync::selected_knowledge_bases))
        .routes(routes!(config_sync::reload_config))
        // Proxy App
        .routes(routes!(proxy::proxy_image))
        // Elasticsearch App (knowledge bases)
        .routes(routes!(knowledge::list_indices))
        .routes(routes!(knowledge::knowledge_health))
        .routes(routes!(knowledge::create_index, knowledge::delete_index))
        .routes(routes!(knowledge::index_info))
        .routes(routes!(knowledge::index_documents, knowledge::delete_documents))
        .routes(routes!(knowledge::search_accurate))
        .routes(routes!(knowledge::search_semantic))
        .routes(routes!(knowledge::search_hybrid))
        // File Management App
        .routes(without_body_limit(routes!(file_management::upload_files, file_management::list_files)))
        .routes(routes!(file_management::batch_urls))
        .routes(routes!(file_management::file_url, file_management::delete_file))
        .routes(routes!(file_management::download_file))
        .routes(without_body_limit(routes!(file_management::upload_to_knowledge_base)))
        .routes(without_body_limit(routes!(file_management::preprocess_files)))
        // Data Process App
        .routes(routes!(data_process::create_task, data_process::list_tasks))
        .routes(routes!(data_process::create_tasks))
        .routes(routes!(data_process::get_task))
        .routes(routes!(data_process::task_details))
        .routes(routes!(data_process::index_tasks))
        .routes(routes!(watched_folders::list_watched, watched_folders::watch_folder))
        .routes(routes!(watched_folders::unwatch_folder))
        .routes(routes!(watched_folders::sync_folder))
        .routes(routes!(model_management::create_model))
        .routes(routes!(model_management::update_model))
        .routes(routes!(model_management::delete_model))
        .routes(routes!(model_management::list_models))
        .routes(routes!(model_management::health_check, model_management::health_check_post))
        .routes(routes!(model_management::get_connect_status))
        .routes(routes!(model_management::update_connect_status))
        .routes(routes!(model_management::me_list))
        .routes(routes!(model_management::me_health))
        .routes(routes!(model_management::me_model_health, model_management::me_model_health_post))
        .routes(routes!(voice::speech_to_text_socket))
        .routes(routes!(voice::text_to_speech_socket))
        .routes(routes!(voice::voice_connectivity))
        .routes(routes!(openai::list_models))
        .routes(routes!(openai::chat_completions))
        .routes(routes!(openai::embeddings))
}

/// Uploads stream to storage, which enforces its own per-file limit, so the JSON body limit must not
/// apply to them.
fn without_body_limit(
    (schemas, paths, method_router): utoipa_axum::router::UtoipaMethodRouter<AppState>,
) -> utoipa_axum::router::UtoipaMethodRouter<AppState> {
    (schemas, paths, method_router.layer(axum::extract::DefaultBodyLimit::disable()))
}

/// The OpenAPI document, as `GET /api/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    clean_wildcards(api_routes().into_openapi())
}

/// Axum's catch-all parameters (`{*object_name}`) are plain parameters (`{object_name}`) in OpenAPI.
fn clean_wildcards(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let paths = std::mem::take(&mut document.paths.paths);
    document.paths.paths = paths.into_iter().map(|(path, item)| (path.replace("{*", "{"), item)).collect();
    document
}

/// The complete application: routes, docs, security, request spans, panic safety.
pub fn build_router(state: AppState) -> Router {
    let (routes, openapi) = api_routes().split_for_parts();
    let openapi = clean_wildcards(openapi);
    let security_policy: Arc<security::SecurityPolicy> = state.security.clone();
    let mcp = crate::mcp::service(state.services.clone(), &security_policy);
    let router = routes
        .nest_service("/mcp", mcp)
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
        .route("/", get(crate::ui::index))
        .route("/index.html", get(crate::ui::index))
        .route("/assets/{*path}", get(crate::ui::asset))
        .route("/api/file/{*path}", axum::routing::options(file_management::file_options))
        .route("/api/indices/", axum::routing::any(missing_id))
        .route("/api/conversation/", axum::routing::any(missing_id))
        .route("/api/tasks/", axum::routing::any(missing_id))
        .route("/api/file/storage/", axum::routing::any(missing_id))
        // ModelEngine's paths for the same endpoints, so one Nexent Local can be another's model hub.
        .route("/open/router/v1/models", get(openai::list_models))
        .route("/open/router/v1/chat/completions", axum::routing::post(openai::chat_completions))
        .route("/open/router/v1/embeddings", axum::routing::post(openai::embeddings))
        .fallback(base::not_found)
        .method_not_allowed_fallback(base::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(crate::error::MAX_JSON_BODY_BYTES))
        .with_state(state);
    with_cross_cutting_layers(router, security_policy)
}

/// Security, panic safety and request spans around any router (the tests wrap their own routes too).
pub fn with_cross_cutting_layers(router: Router, security_policy: Arc<security::SecurityPolicy>) -> Router {
    router
        .layer(axum::middleware::from_fn_with_state(security_policy, security::enforce))
        .layer(CatchPanicLayer::custom(base::panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
        }))
}

/// The seed document's trailing-slash spellings, the id in the query instead of the path
/// (`POST /api/indices/?index_name=kb`, `GET /api/conversation/?conversation_id=7`, ...): the path and the
/// query parameter that names the id there.
const SEED_ID_QUERIES: [(&str, &str); 4] = [
    ("/api/indices/", "index_name"),
    ("/api/conversation/", "conversation_id"),
    ("/api/tasks/", "task_id"),
    ("/api/file/storage/", "object_name"),
];

/// `/api/indices/?index_name=kb` is served as `/api/indices/kb` (the query kept, so `embedding_dim` and
/// the like still reach the handler). Without the parameter the path stays, and [`missing_id`] answers.
pub fn seed_id_in_query<B>(mut request: Request<B>) -> Request<B> {
    let path = request.uri().path();
    let Some((prefix, key)) = SEED_ID_QUERIES.iter().find(|(prefix, _)| path == *prefix) else { return request };
    let query = request.uri().query().unwrap_or("");
    let Some(id) = url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, value)| name == key && !value.is_empty())
        .map(|(_, value)| value.into_owned())
    else {
        return request;
    };
    // Object names keep their `/` (the route takes the rest of the path); each segment is encoded.
    let encoded: Vec<String> = id
        .split('/')
        .map(|segment| url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20"))
        .collect();
    if let Ok(uri) = format!("{prefix}{}?{query}", encoded.join("/")).parse() {
        *request.uri_mut() = uri;
    }
    request
}

/// A seed-style path whose id parameter is missing: 404 saying which one.
async fn missing_id(uri: axum::http::Uri) -> axum::response::Response {
    let path = uri.path();
    let key = SEED_ID_QUERIES.iter().find(|(prefix, _)| *prefix == path).map_or("id", |(_, key)| key);
    crate::error::ApiError::NotFound(format!(
        "{path} needs the {key} query parameter (or the id in the path: {path}<{key}>)"
    ))
    .into_response()
}

/// Nexent served every route with and without its `/api` prefix; so do we, for its app prefixes.
pub fn add_api_prefix<B>(mut request: Request<B>) -> Request<B> {
    const APP_PREFIXES: [&str; 11] = [
        "/conversation/",
        "/config/",
        "/agent/",
        "/proxy/",
        "/indices",
        "/tasks",
        "/file/",
        "/model/",
        "/me/",
        "/voice/",
        "/image",
    ];
    let path = request.uri().path();
    if APP_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
        let path_and_query = request.uri().path_and_query().map(|value| value.as_str()).unwrap_or(path);
        if let Ok(uri) = format!("/api{path_and_query}").parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_json() {
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let router: Router = Router::new().route("/api/boom", get(boom));
        let app = with_cross_cutting_layers(router, Arc::new(security::SecurityPolicy::loopback(5010)));
        let mut request =
            Request::builder().uri("/api/boom").header("host", "127.0.0.1:5010").body(Body::empty()).expect("request");
        let peer = crate::peer::Peer { address: ([127, 0, 0, 1], 40000).into(), same_user: true };
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let response = app.oneshot(request).await.expect("response");
        assert_eq!(response.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["message"], crate::error::INTERNAL_ERROR_MESSAGE);
    }

    #[test]
    fn paths_without_the_api_prefix_are_served_too() {
        let request = add_api_prefix(Request::builder().uri("/conversation/list?x=1").body(()).expect("request"));
        assert_eq!(request.uri(), "/api/conversation/list?x=1");
        let untouched = add_api_prefix(Request::builder().uri("/assets/app.js").body(()).expect("request"));
        assert_eq!(untouched.uri(), "/assets/app.js");
    }

    #[test]
    fn the_openapi_document_lists_every_route() {
        let document = openapi_document();
        for path in [
            "/api/conversation/create",
            "/api/conversation/{conversation_id}",
            "/api/config/load_config",
            "/api/proxy/image",
            "/api/agent/reload_config",
            "/api/file/preprocess",
        ] {
            assert!(document.paths.paths.contains_key(path), "{path} missing from OpenAPI");
        }
    }
}
