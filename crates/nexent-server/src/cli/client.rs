//! The commands' way to the API. Every command talks to `/api`, so it does exactly what the UI and
//! Nexent's client would, with the same checks:
//! - to the server named by `--server` (or `NEXENT_SERVER`);
//! - else to the server running on the data dir (its `server.json`), which owns the index writers;
//! - else to a private server this process starts on the data dir for the command's length: loopback, a
//!   port the system picks, a random API token so no other program can use it, no `server.json`; it is
//!   stopped (and its indices flushed) when the command ends.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::discovery;
use crate::settings::{ServeArgs, Settings};

/// Where a command goes: flattened into every command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Target {
    /// The data dir (default: NEXENT_HOME, else the platform's data dir).
    #[arg(long, env = "NEXENT_HOME")]
    pub data_dir: Option<PathBuf>,
    /// Talk to the server at this URL instead of the data dir's.
    #[arg(long, env = "NEXENT_SERVER")]
    pub server: Option<String>,
    /// Where the model files are, for a server this command starts.
    #[arg(long, env = "NEXENT_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
}

/// The serve flags as the environment and config.toml set them, for a command's settings.
#[derive(Debug, Parser)]
struct EnvironmentOnly {
    #[command(flatten)]
    serve: ServeArgs,
}

/// How a command reached the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// A server named by `--server`.
    Named(String),
    /// The server running on the data dir.
    Running { url: String, data_dir: PathBuf },
    /// A server this command started on the data dir.
    Private { data_dir: PathBuf },
}

/// A failed request: the API's status and message.
#[derive(Debug, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub struct ApiFailure {
    pub status: u16,
    pub message: String,
}

pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    pub reach: Reach,
    private: Option<PrivateServer>,
}

struct PrivateServer {
    stop: oneshot::Sender<()>,
    finished: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The serve flags a command's own server would get: the environment, then `target`'s flags, on
/// loopback at a port the system picks.
fn command_serve_args(target: &Target) -> anyhow::Result<ServeArgs> {
    let mut serve = EnvironmentOnly::try_parse_from(["nexent"]).context("cannot read the NEXENT_* environment")?.serve;
    if target.data_dir.is_some() {
        serve.data_dir = target.data_dir.clone();
    }
    if target.models_dir.is_some() {
        serve.models_dir = target.models_dir.clone();
    }
    serve.host = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    serve.port = Some(0);
    Ok(serve)
}

/// The settings a command works with (its data dir, models dir, token), without starting anything.
pub fn command_settings(target: &Target) -> anyhow::Result<Settings> {
    crate::settings_from(command_serve_args(target)?)
}

impl Api {
    /// The server named by `--server`, else the data dir's running server, else a private one.
    pub async fn connect(target: &Target) -> anyhow::Result<Api> {
        let settings = command_settings(target)?;
        match Self::connect_existing(target, &settings).await? {
            Some(api) => Ok(api),
            None => Self::start_private(settings).await,
        }
    }

    /// The server named by `--server` (which must answer), else the data dir's running server if it
    /// answers; None when no server runs on the data dir.
    pub async fn connect_existing(target: &Target, settings: &Settings) -> anyhow::Result<Option<Api>> {
        let http = http_client()?;
        if let Some(url) = &target.server {
            let base = url.trim_end_matches('/').to_owned();
            let api = Api {
                http,
                base: base.clone(),
                token: settings.api_token.clone(),
                reach: Reach::Named(base),
                private: None,
            };
            api.get("/api/health").await.with_context(|| format!("no Nexent Local server answers at {url}"))?;
            return Ok(Some(api));
        }
        let Some(running) = discovery::running_server(&settings.data_dir) else { return Ok(None) };
        let api = Api {
            http,
            base: running.url.clone(),
            token: settings.api_token.clone(),
            reach: Reach::Running { url: running.url.clone(), data_dir: settings.data_dir.clone() },
            private: None,
        };
        // A server killed without cleaning up may have left its file; its port may answer nothing.
        match api.health_within(Duration::from_secs(3)).await {
            Ok(()) => Ok(Some(api)),
            Err(error) => {
                tracing::debug!(%error, url = %running.url, "the announced server does not answer");
                Ok(None)
            }
        }
    }

    /// Starts the data dir's server in this process, for this command only.
    async fn start_private(mut settings: Settings) -> anyhow::Result<Api> {
        let http = http_client()?;
        settings.advertise = false;
        settings.watch.clear();
        let token = uuid::Uuid::new_v4().simple().to_string();
        settings.api_token = Some(token.clone());
        let data_dir = settings.data_dir.clone();
        let (listening, url) = oneshot::channel::<String>();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut finished = tokio::spawn(crate::serve(
            settings,
            async move {
                let _ = stopped.await;
            },
            move |url| {
                let _ = listening.send(url.to_owned());
            },
        ));
        let base = tokio::select! {
            url = url => url.context("the data dir's server stopped before it listened")?,
            result = &mut finished => {
                result??;
                bail!("the data dir's server stopped before it listened")
            }
        };
        let private = Some(PrivateServer { stop, finished });
        Ok(Api { http, base, token: Some(token), reach: Reach::Private { data_dir }, private })
    }

    /// Stops a private server, waiting until its indices are flushed.
    pub async fn close(self) -> anyhow::Result<()> {
        if let Some(private) = self.private {
            let _ = private.stop.send(());
            private.finished.await??;
        }
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn health_within(&self, limit: Duration) -> anyhow::Result<()> {
        let response = self.request(reqwest::Method::GET, "/api/health").timeout(limit).send().await?;
        read(response).await.map(|_| ())
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        read(self.request(reqwest::Method::GET, path).send().await.with_context(|| self.unreachable())?).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        read(self.request(reqwest::Method::POST, path).json(body).send().await.with_context(|| self.unreachable())?)
            .await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        read(self.request(reqwest::Method::DELETE, path).send().await.with_context(|| self.unreachable())?).await
    }

    /// A multipart form posted to `path`.
    pub async fn post_form(&self, path: &str, form: reqwest::multipart::Form) -> anyhow::Result<Value> {
        read(
            self.request(reqwest::Method::POST, path)
                .multipart(form)
                .send()
                .await
                .with_context(|| self.unreachable())?,
        )
        .await
    }

    /// A streamed response (the agent's events), once its status says it started.
    pub async fn stream(&self, path: &str, body: &Value) -> anyhow::Result<reqwest::Response> {
        let response =
            self.request(reqwest::Method::POST, path).json(body).send().await.with_context(|| self.unreachable())?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(read(response).await.expect_err("a failed status is an error"))
    }

    fn unreachable(&self) -> String {
        format!("cannot reach the server at {}", self.base)
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?)
}

/// The body of a successful response, or the API's message as an [`ApiFailure`].
async fn read(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    if status.is_success() {
        return Ok(body);
    }
    Err(ApiFailure { status: status.as_u16(), message: failure_message(&body, &text) }.into())
}

/// The API's words for a failure: Nexent's `message`/`detail`, the upload route's `error` and `errors`,
/// OpenAI's `error.message`, or the body itself.
pub fn failure_message(body: &Value, text: &str) -> String {
    let mut message = match body {
        Value::Object(object) => object
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| object.get("error").and_then(|error| error.as_str().or_else(|| error["message"].as_str())))
            .or_else(|| object.get("detail").and_then(Value::as_str))
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_string()),
        _ => text.trim().to_owned(),
    };
    if let Some(errors) = body.get("errors").and_then(Value::as_array).filter(|errors| !errors.is_empty()) {
        let listed: Vec<&str> = errors.iter().filter_map(Value::as_str).collect();
        message = format!("{message}: {}", listed.join("; "));
    }
    if message.is_empty() { "the server gave no reason".into() } else { message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failure_messages_come_from_each_of_the_apis_shapes() {
        assert_eq!(failure_message(&json!({"message": "Index x not found"}), ""), "Index x not found");
        assert_eq!(
            failure_message(
                &json!({"error": "No valid files uploaded", "errors": ["File type not allowed: a.exe"]}),
                ""
            ),
            "No valid files uploaded: File type not allowed: a.exe"
        );
        assert_eq!(failure_message(&json!({"error": {"message": "bad model"}}), ""), "bad model");
        assert_eq!(failure_message(&Value::String(String::new()), "  Bad Gateway "), "Bad Gateway");
        assert_eq!(failure_message(&Value::String(String::new()), ""), "the server gave no reason");
    }
}
