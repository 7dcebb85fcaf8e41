//! The embedding seam: turns texts into vectors. Implementations (a local ONNX model, a remote
//! OpenAI-compatible `/v1/embeddings` server) live in `nexent-engines` and run on their own threads;
//! the future they return must never block the async runtime.

use std::sync::Arc;

use futures::future::BoxFuture;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error("the embedding model is not available: {0}")]
    Unavailable(String),
    #[error("the embedding model is busy; try again shortly")]
    Busy,
    #[error("embedding failed: {0}")]
    Failed(String),
}

pub trait Embedder: Send + Sync {
    /// The model's name as recorded in indices (`embedding_model_name`).
    fn model_name(&self) -> &str;
    /// Length of every vector this embedder returns.
    fn dimension(&self) -> usize;
    /// Embeds `texts` in order; vectors are L2-normalised so cosine similarity is a dot product.
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>>;
}

/// Stands in when no model could be loaded, so the server still starts and says why on use.
pub struct UnavailableEmbedder {
    pub model_name: String,
    pub dimension: usize,
    pub reason: String,
}

impl Embedder for UnavailableEmbedder {
    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, _texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>> {
        let reason = self.reason.clone();
        Box::pin(async move { Err(EmbedError::Unavailable(reason)) })
    }
}

pub type SharedEmbedder = Arc<dyn Embedder>;

/// Scales `vector` to unit length (a zero vector stays zero).
pub fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
    if norm > 0.0 {
        for value in vector.iter_mut() {
            *value /= norm;
        }
    }
}
