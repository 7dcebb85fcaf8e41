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
pub mod peer;
pub mod router;
pub mod security;
pub mod sse;
pub mod ui;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nexent_core::services::Services;

pub use router::{build_router, openapi_document};
pub use security::SecurityPolicy;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub security: Arc<SecurityPolicy>,
    /// Where this server answers (`http://127.0.0.1:5010`), once it listens: with no ModelEngine host
    /// configured, the `/api/me/*` routes reach the built-in engine's `/open/router/v1` routes there.
    pub own_url: Option<Arc<str>>,
}

impl AppState {
    pub fn new(services: Services, security: SecurityPolicy) -> Self {
        Self { services, security: Arc::new(security), own_url: None }
    }

    pub fn with_own_url(mut self, url: &str) -> Self {
        self.own_url = Some(url.into());
        self
    }
}

/// How long a client may take to send a request's headers: a connection that trickles them in
/// (slowloris) is closed instead of holding a task and a socket for ever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// How long shutdown waits for open requests (a streaming answer, a socket) before it lets them go.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves the application on `listener` until `shutdown` completes, then drains open requests.
///
/// Our own accept loop instead of `axum::serve`: hyper gets a timer (so the header-read timeout works),
/// and each connection's peer is identified once, when it is accepted ([`peer::Peer`]), for the
/// security middleware.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let router = build_router(state);
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let local = stream.local_addr()?;
        let peer = tokio::task::spawn_blocking(move || peer::Peer::identify(local, remote))
            .await
            .unwrap_or(peer::Peer { address: remote, same_user: false });
        let service = router.clone().map_request(move |request: axum::http::Request<hyper::body::Incoming>| {
            let request = router::add_api_prefix(request.map(axum::body::Body::new));
            let mut request = router::seed_id_in_query(request);
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            request
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("open connections were still busy at shutdown; closing them");
    }
    Ok(())
}
