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

/// What a text is to the search, for models trained to embed the two differently (E5's `query: ` and
/// `passage: ` prefixes); other models ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// What someone asks (a search query; also a text embedded on its own, as E5's authors advise for
    /// symmetric uses such as `/v1/embeddings`).
    Query,
    /// What is searched (a chunk of a document).
    Passage,
}

pub trait Embedder: Send + Sync {
    /// The model's name as recorded in indices (`embedding_model_name`).
    fn model_name(&self) -> &str;
    /// Length of every vector this embedder returns.
    fn dimension(&self) -> usize;
    /// Embeds `texts` in order; vectors are L2-normalised so cosine similarity is a dot product.
    fn embed(&self, texts: Vec<String>, kind: TextKind) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>>;
    /// The cosine similarity of unrelated texts under this model: about 0 for most models, about 0.7 for
    /// E5, whose scores sit in a narrow band. Search rescales similarities from it to 1, so fusion and
    /// the scores shown mean the same whatever model a base was built with.
    fn similarity_floor(&self) -> f32 {
        0.0
    }
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

    fn embed(&self, _texts: Vec<String>, _kind: TextKind) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>> {
        let reason = self.reason.clone();
        Box::pin(async move { Err(EmbedError::Unavailable(reason)) })
    }
}

pub type SharedEmbedder = Arc<dyn Embedder>;

/// The embedding models a server has loaded, by name: the default (new knowledge bases get it unless
/// they ask for another) and the others a base may be built with.
#[derive(Clone)]
pub struct Embedders {
    default: SharedEmbedder,
    others: Vec<SharedEmbedder>,
}

impl Embedders {
    /// `others` whose name is the default's, or an earlier one's, are dropped.
    pub fn new(default: SharedEmbedder, others: Vec<SharedEmbedder>) -> Self {
        let mut kept: Vec<SharedEmbedder> = Vec::new();
        for embedder in others {
            let name = embedder.model_name();
            if name != default.model_name() && !kept.iter().any(|other| other.model_name() == name) {
                kept.push(embedder);
            }
        }
        Self { default, others: kept }
    }

    pub fn only(default: SharedEmbedder) -> Self {
        Self { default, others: Vec::new() }
    }

    pub fn default_embedder(&self) -> &SharedEmbedder {
        &self.default
    }

    /// The loaded model of that name.
    pub fn get(&self, model_name: &str) -> Option<&SharedEmbedder> {
        self.all().find(|embedder| embedder.model_name() == model_name)
    }

    /// The default first.
    pub fn all(&self) -> impl Iterator<Item = &SharedEmbedder> {
        std::iter::once(&self.default).chain(&self.others)
    }
}

/// Scales `vector` to unit length (a zero vector stays zero).
pub fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
    if norm > 0.0 {
        for value in vector.iter_mut() {
            *value /= norm;
        }
    }
}

type LoadEmbedder = Box<dyn FnOnce() -> Result<SharedEmbedder, String> + Send>;

/// An embedder loaded on first use, on a blocking thread: a model most requests never touch costs no
/// start-up time and no memory until a knowledge base built with it is written or searched. Loading runs
/// on a task of its own, so a caller that goes away does not stop it; a model that fails to load says why
/// on every use.
pub struct LazyEmbedder {
    model_name: String,
    dimension: usize,
    similarity_floor: f32,
    inner: Arc<LazyInner>,
}

struct LazyInner {
    load: std::sync::Mutex<Option<LoadEmbedder>>,
    loaded: tokio::sync::watch::Sender<Option<Result<SharedEmbedder, String>>>,
}

impl LazyEmbedder {
    pub fn new(
        model_name: impl Into<String>,
        dimension: usize,
        load: impl FnOnce() -> Result<SharedEmbedder, String> + Send + 'static,
    ) -> Self {
        let inner = LazyInner {
            load: std::sync::Mutex::new(Some(Box::new(load))),
            loaded: tokio::sync::watch::channel(None).0,
        };
        Self { model_name: model_name.into(), dimension, similarity_floor: 0.0, inner: Arc::new(inner) }
    }

    /// The loaded model's [`Embedder::similarity_floor`], known before it loads.
    pub fn with_similarity_floor(mut self, floor: f32) -> Self {
        self.similarity_floor = floor;
        self
    }
}

impl Embedder for LazyEmbedder {
    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn similarity_floor(&self) -> f32 {
        self.similarity_floor
    }

    fn embed(&self, texts: Vec<String>, kind: TextKind) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>> {
        let inner = self.inner.clone();
        let expected = self.dimension;
        Box::pin(async move {
            let mut loaded = inner.loaded.subscribe();
            // The first caller starts the loading; everyone waits for its outcome.
            if let Some(load) = crate::sync::lock(&inner.load).take() {
                let state = inner.clone();
                tokio::spawn(async move {
                    let outcome = match tokio::task::spawn_blocking(load).await {
                        Ok(Ok(embedder)) if embedder.dimension() != expected => {
                            Err(format!("the model gives {}-dimensional vectors, not {expected}", embedder.dimension()))
                        }
                        Ok(outcome) => outcome,
                        Err(error) => Err(format!("loading stopped: {error}")),
                    };
                    state.loaded.send_replace(Some(outcome));
                });
            }
            let outcome = loaded
                .wait_for(Option::is_some)
                .await
                .map_err(|_| EmbedError::Unavailable("the model stopped loading".into()))?
                .clone();
            let embedder = outcome.unwrap_or_else(|| Err("not loaded".into())).map_err(EmbedError::Unavailable)?;
            embedder.embed(texts, kind).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, usize);

    impl Embedder for Fixed {
        fn model_name(&self) -> &str {
            self.0
        }
        fn dimension(&self) -> usize {
            self.1
        }
        fn embed(&self, texts: Vec<String>, kind: TextKind) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>> {
            let value = if kind == TextKind::Query { 1.0 } else { 0.0 };
            let dimension = self.1;
            Box::pin(async move { Ok(texts.iter().map(|_| vec![value; dimension]).collect()) })
        }
    }

    #[test]
    fn embedders_are_found_by_name_with_the_default_first_and_no_name_twice() {
        let embedders = Embedders::new(
            Arc::new(Fixed("a", 2)),
            vec![Arc::new(Fixed("b", 3)), Arc::new(Fixed("a", 4)), Arc::new(Fixed("b", 5))],
        );
        let names: Vec<&str> = embedders.all().map(|embedder| embedder.model_name()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(embedders.get("b").map(|embedder| embedder.dimension()), Some(3));
        assert!(embedders.get("c").is_none());
    }

    #[tokio::test]
    async fn a_lazy_embedder_loads_once_on_first_use_and_says_why_it_cannot() {
        let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = loads.clone();
        let lazy = Arc::new(LazyEmbedder::new("fixed", 2, move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Arc::new(Fixed("fixed", 2)) as SharedEmbedder)
        }));
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing loaded before use");
        let (first, second) = tokio::join!(
            lazy.embed(vec!["q".into()], TextKind::Query),
            lazy.embed(vec!["p".into()], TextKind::Passage)
        );
        assert_eq!(first.expect("query"), [vec![1.0, 1.0]]);
        assert_eq!(second.expect("passage"), [vec![0.0, 0.0]]);
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);

        let failing = LazyEmbedder::new("broken", 2, || Err("missing file".to_owned()));
        for _ in 0..2 {
            let error = failing.embed(vec!["q".into()], TextKind::Query).await.expect_err("unavailable");
            assert!(error.to_string().contains("missing file"), "{error}");
        }
        let wrong = LazyEmbedder::new("wrong", 2, || Ok(Arc::new(Fixed("wrong", 3)) as SharedEmbedder));
        let error = wrong.embed(vec!["q".into()], TextKind::Query).await.expect_err("dimension");
        assert!(error.to_string().contains("3-dimensional"), "{error}");
    }
}
