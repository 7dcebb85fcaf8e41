//! Nexent Local's HTTP surface: the axum router, Nexent's wire shapes, the one error-to-response
//! mapping, the security middleware, and the OpenAPI document generated from the handlers.
//!
//! Only this crate knows HTTP. Handlers convert core types to wire JSON at the boundary. The server is
//! embeddable: [`serve`] runs the same router for the `nexent` binary, the desktop shell and the tests.

pub mod apps {
    pub mod agent;
    pub mod base;
    pub mod config_sync;
    pub mod conversation;
    pub mod data_process;
    pub mod file_management;
    pub mod knowledge;
    pub mod model_management;
    pub mod openai;
    pub mod proxy;
    pub mod voice;
    pub mod watched_folders;
}
pub mod error;
pub mod mcp;
pub mod router;
pub mod security;
pub mod sse;
pub mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use nexent_core::services::Services;

pub use router::{build_router, openapi_document};
pub use security::SecurityPolicy;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub security: Arc<SecurityPolicy>,
}

impl AppState {
    pub fn new(services: Services, security: SecurityPolicy) -> Self {
        Self { services, security: Arc::new(security) }
    }
}

/// Serves the application on `listener` until `shutdown` completes, then drains open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use tower::ServiceExt;
    let router = build_router(state);
    let app = router.map_request(router::add_api_prefix);
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
