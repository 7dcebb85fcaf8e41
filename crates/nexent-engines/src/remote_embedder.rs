//! Embeddings from any OpenAI-compatible `/v1/embeddings` server (vLLM, llama-server, Ollama, a cloud
//! API, or another Nexent Local). Requests are batched and time-limited; vectors are L2-normalised.
//! Redirects stay on the server's host and answers are read up to [`MAX_ANSWER_BYTES`].

use std::time::Duration;

use futures::future::BoxFuture;
use nexent_core::fetch::{read_capped, same_host_redirects};
use nexent_core::knowledge::embedder::{EmbedError, Embedder, TextKind, normalise};
use serde_json::{Value, json};

const REQUEST_BATCH: usize = 64;
/// The largest answer read: 64 vectors of 8192 dimensions as JSON take about 12 MB.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct RemoteEmbedder {
    client: reqwest::Client,
    endpoint: String,
    api_key: Option<String>,
    model_name: String,
    dimension: usize,
}

impl RemoteEmbedder {
    /// `base_url` is the server's API root (e.g. `http://host:8000/v1`); `dimension` is what the model
    /// returns (checked on every answer; 0 accepts any, for health checks).
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        model_name: &str,
        dimension: usize,
    ) -> Result<Self, EmbedError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .redirect(same_host_redirects())
            .build()
            .map_err(|error| EmbedError::Unavailable(error.to_string()))?;
        let trimmed = base_url.trim_end_matches('/');
        let endpoint =
            if trimmed.ends_with("/embeddings") { trimmed.to_owned() } else { format!("{trimmed}/embeddings") };
        Ok(Self {
            client,
            endpoint,
            api_key: api_key.filter(|key| !key.is_empty()),
            model_name: model_name.to_owned(),
            dimension,
        })
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut request = self.client.post(&self.endpoint).json(&json!({ "model": self.model_name, "input": texts }));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response =
            request.send().await.map_err(|error| EmbedError::Unavailable(error.without_url().to_string()))?;
        let status = response.status();
        let body =
            read_capped(response, MAX_ANSWER_BYTES).await.map_err(|error| EmbedError::Failed(error.to_string()))?;
        let body: Value = match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(_) if !status.is_success() => Value::Null,
            Err(error) => return Err(EmbedError::Failed(format!("the answer is no JSON: {error}"))),
        };
        if !status.is_success() {
            let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("no message");
            return Err(EmbedError::Failed(format!("the embedding server answered {status}: {message}")));
        }
        let mut items: Vec<(usize, Vec<f32>)> = body
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| EmbedError::Failed("the answer has no data list".into()))?
            .iter()
            .enumerate()
            .map(|(position, item)| {
                let index = item.get("index").and_then(Value::as_u64).map_or(position, |index| index as usize);
                let vector = item
                    .get("embedding")
                    .and_then(Value::as_array)
                    .map(|values| values.iter().filter_map(Value::as_f64).map(|value| value as f32).collect())
                    .unwrap_or_default();
                (index, vector)
            })
            .collect();
        items.sort_by_key(|(index, _)| *index);
        if items.len() != texts.len() {
            return Err(EmbedError::Failed(format!("asked for {} vectors, got {}", texts.len(), items.len())));
        }
        items
            .into_iter()
            .map(|(_, mut vector)| {
                if self.dimension != 0 && vector.len() != self.dimension {
                    return Err(EmbedError::Failed(format!(
                        "the model returned {} dimensions, {} were configured",
                        vector.len(),
                        self.dimension
                    )));
                }
                normalise(&mut vector);
                Ok(vector)
            })
            .collect()
    }
}

impl Embedder for RemoteEmbedder {
    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    /// OpenAI's API has no notion of a text's kind: the server's model decides.
    fn embed(&self, texts: Vec<String>, _kind: TextKind) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>> {
        let this = self.clone();
        Box::pin(async move {
            let mut vectors = Vec::with_capacity(texts.len());
            for batch in texts.chunks(REQUEST_BATCH) {
                vectors.extend(this.embed_batch(batch).await?);
            }
            Ok(vectors)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_http;

    #[tokio::test]
    async fn redirects_elsewhere_and_oversized_answers_are_refused() {
        let vectors = br#"{"data":[{"index":0,"embedding":[3.0,4.0]}]}"#;
        let server = test_http::CannedServer::start(test_http::response("200 OK", &[], vectors)).await;
        let embedder = RemoteEmbedder::new(&server.url, None, "m", 2).expect("embedder");
        assert_eq!(embedder.embed(vec!["a".into()], TextKind::Query).await.expect("vectors"), [vec![0.6, 0.8]]);

        let location = format!("Location: http://localhost:{}/embeddings", server.port);
        let redirecting =
            test_http::CannedServer::start(test_http::response("308 Permanent Redirect", &[&location], b"")).await;
        let embedder = RemoteEmbedder::new(&redirecting.url, None, "m", 2).expect("embedder");
        let refused = embedder.embed(vec!["a".into()], TextKind::Query).await.expect_err("not followed");
        assert!(refused.to_string().contains("redirect"), "{refused}");
        assert_eq!(server.hits(), 1, "only the direct request reached the embedding server");

        let declared = format!("Content-Length: {}", MAX_ANSWER_BYTES + 1);
        let oversized = test_http::CannedServer::start(test_http::response("200 OK", &[&declared], b"{}")).await;
        let embedder = RemoteEmbedder::new(&oversized.url, None, "m", 2).expect("embedder");
        let refused = embedder.embed(vec!["a".into()], TextKind::Query).await.expect_err("too large");
        assert!(refused.to_string().contains("larger than"), "{refused}");
    }

    #[tokio::test]
    async fn a_streamed_body_is_cut_at_the_cap() {
        let server =
            test_http::CannedServer::start(test_http::response_until_close("200 OK", &[], &[b'x'; 4096])).await;
        let response = reqwest::get(&server.url).await.expect("response");
        let refused = read_capped(response, 1000).await.expect_err("past the cap");
        assert!(matches!(refused, nexent_core::fetch::BodyError::TooLarge(1000)), "{refused}");
        let response = reqwest::get(&server.url).await.expect("response");
        assert_eq!(read_capped(response, 4096).await.expect("at the cap").len(), 4096);
    }
}
