//! Embeddings from any OpenAI-compatible `/v1/embeddings` server (vLLM, llama-server, Ollama, a cloud
//! API, or another Nexent Local). Requests are batched and time-limited; vectors are L2-normalised.

use std::time::Duration;

use futures::future::BoxFuture;
use nexent_core::knowledge::embedder::{EmbedError, Embedder, normalise};
use serde_json::{Value, json};

const REQUEST_BATCH: usize = 64;

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
        let body: Value = response.json().await.map_err(|error| EmbedError::Failed(error.without_url().to_string()))?;
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

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>> {
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
