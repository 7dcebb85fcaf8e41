//! A ModelEngine hub (nexent-api.md §1.7): an OpenAI-compatible model router at `MODEL_ENGINE_HOST`
//! (`/open/router/v1/models`, `/chat/completions`, `/embeddings`) with `MODEL_ENGINE_APIKEY` as bearer
//! token. Another Nexent Local serves the same paths, so one instance can be the hub of another.
//!
//! The host is configured by the user, so it may be on this machine or the local network: it is reached
//! with a plain client, not the public-only fetcher used for URLs that requests name.

use std::time::Duration;

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HubError {
    #[error("MODEL_ENGINE_HOST is not configured")]
    NotConfigured,
    #[error("Connection timeout")]
    Timeout,
    #[error("Connection failed, error code: {0}")]
    Status(u16),
    #[error("Connection failed: {0}")]
    Failed(String),
}

/// A hub's model types and ours: `chat` is `llm`, `embed` is `embedding`, `asr` is `stt`.
pub fn our_model_type(hub_type: &str) -> &str {
    match hub_type {
        "chat" => "llm",
        "embed" => "embedding",
        "asr" => "stt",
        other => other,
    }
}

/// The largest answer read from a hub (a model list, a short chat reply or one embedding).
const MAX_ANSWER_BYTES: u64 = 8 * 1024 * 1024;

pub struct ModelEngineHub {
    base: String,
    api_key: Option<String>,
    client: reqwest::Client,
}

impl ModelEngineHub {
    pub fn new(host: &str, api_key: Option<String>) -> Result<Self, HubError> {
        let host = host.trim().trim_end_matches('/');
        if host.is_empty() {
            return Err(HubError::NotConfigured);
        }
        let host = if host.contains("://") { host.to_owned() } else { format!("http://{host}") };
        let client = reqwest::Client::builder()
            .redirect(crate::fetch::same_host_redirects())
            .build()
            .map_err(|error| HubError::Failed(error.to_string()))?;
        Ok(Self { base: format!("{host}/open/router/v1"), api_key: api_key.filter(|key| !key.is_empty()), client })
    }

    async fn send(&self, request: reqwest::RequestBuilder, timeout: Duration) -> Result<Value, HubError> {
        let request = match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        let response = request.timeout(timeout).send().await.map_err(|error| {
            if error.is_timeout() { HubError::Timeout } else { HubError::Failed(error.without_url().to_string()) }
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(HubError::Status(status.as_u16()));
        }
        let body = crate::fetch::read_capped(response, MAX_ANSWER_BYTES).await.map_err(|error| {
            if error.is_timeout() { HubError::Timeout } else { HubError::Failed(error.to_string()) }
        })?;
        serde_json::from_slice(&body).map_err(|error| HubError::Failed(format!("the hub's answer is no JSON: {error}")))
    }

    /// The hub's model list, as it gives it (`data`).
    pub async fn models(&self, timeout: Duration) -> Result<Vec<Value>, HubError> {
        let body = self.send(self.client.get(format!("{}/models", self.base)), timeout).await?;
        Ok(body.get("data").and_then(Value::as_array).cloned().unwrap_or_default())
    }

    /// Calls one model the way its type is used: a chat reply to "hello", or the embedding of "Hello".
    pub async fn check_model(&self, item: &Value, timeout: Duration) -> Result<(), HubError> {
        let id = item["id"].as_str().unwrap_or_default();
        let (path, body) = match our_model_type(item["type"].as_str().unwrap_or_default()) {
            "llm" | "vlm" => (
                "chat/completions",
                json!({"model": id, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}),
            ),
            "embedding" => ("embeddings", json!({"model": id, "input": "Hello"})),
            other => return Err(HubError::Failed(format!("Health check not supported for {other} type models"))),
        };
        self.send(self.client.post(format!("{}/{path}", self.base)).json(&body), timeout).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_types() {
        let hub = ModelEngineHub::new("127.0.0.1:5010/", None).expect("hub");
        assert_eq!(hub.base, "http://127.0.0.1:5010/open/router/v1");
        assert_eq!(ModelEngineHub::new("  ", None).err(), Some(HubError::NotConfigured));
        assert_eq!(
            (our_model_type("chat"), our_model_type("embed"), our_model_type("tts")),
            ("llm", "embedding", "tts")
        );
    }
}
