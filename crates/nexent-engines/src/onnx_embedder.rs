//! Local sentence embeddings: a BERT-style ONNX model (all-MiniLM-L6-v2, int8) with its HuggingFace
//! tokenizer, mean-pooled over the attention mask and L2-normalised.
//!
//! One engine thread owns the ONNX session. Requests arrive on a bounded channel; requests waiting together
//! are embedded together (ingestion sends a few chunks per document, too few to batch well alone). Texts are
//! sorted by length and cut into batches of similar length, so padding stays small, and each request gets
//! its vectors back in its own order.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use futures::future::BoxFuture;
use nexent_core::knowledge::embedder::{EmbedError, Embedder, TextKind, normalise};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// all-MiniLM-L6-v2 was trained on sequences up to 256 word pieces; longer input is truncated.
pub const MAX_SEQUENCE_TOKENS: usize = 256;
const BATCH_SIZE: usize = 32;
/// Most word pieces one model run may see (texts × longest text). The attention buffers grow with it and
/// ONNX Runtime's arena keeps its high-water mark: 32 texts of 256 pieces took the server from 0.83 to
/// 1.5 GB resident (issue 15's hostile JSON, or a plain text of "1, 1, 1, ..."); 8 such texts cost a
/// quarter of that. Short texts still go 32 at a time.
const BATCH_TOKENS: usize = 2048;
/// Requests waiting in the queue are merged up to this many texts.
const COALESCE_TEXTS: usize = 256;
/// Characters past which a text is cut to [`MAX_SEQUENCE_TOKENS`] anyway (about 5 characters a token).
const TRUNCATED_CHARS: usize = 1400;
const QUEUE_DEPTH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum OnnxEmbedderError {
    #[error("missing model file {0}")]
    MissingFile(PathBuf),
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    Runtime { path: PathBuf, reason: String },
    #[error("cannot load the model: {0}")]
    Model(String),
    #[error("cannot load the tokenizer: {0}")]
    Tokenizer(String),
}

/// The default local model, its folder and the ONNX Runtime library, as `models/fetch.py embedding`
/// lays them out under the models folder.
pub const MINILM_MODEL_NAME: &str = "all-MiniLM-L6-v2";
pub const MINILM_DIMENSION: usize = 384;
const MINILM_DIR: &str = "all-MiniLM-L6-v2-int8";
const ONNX_RUNTIME_LIBRARY: &str = "onnxruntime/libonnxruntime.so.1.31.1";

/// Where the model's files are.
#[derive(Debug, Clone)]
pub struct OnnxEmbedderConfig {
    /// Folder with `model.onnx` and `tokenizer.json`.
    pub model_dir: PathBuf,
    /// `libonnxruntime.so.*`.
    pub runtime_library: PathBuf,
    pub model_name: String,
    pub threads: usize,
}

impl OnnxEmbedderConfig {
    /// all-MiniLM-L6-v2 (int8) from a models folder filled by `models/fetch.py`.
    pub fn minilm(models_dir: &Path, threads: usize) -> Self {
        Self {
            model_dir: models_dir.join(MINILM_DIR),
            runtime_library: models_dir.join(ONNX_RUNTIME_LIBRARY),
            model_name: MINILM_MODEL_NAME.to_owned(),
            threads,
        }
    }
}

struct Job {
    texts: Vec<String>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
}

pub struct OnnxEmbedder {
    model_name: String,
    dimension: usize,
    jobs: SyncSender<Job>,
}

/// ONNX Runtime allows one environment per process; every session shares it.
static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

pub(crate) fn environment(library: &Path) -> Result<&'static ort::environment::Environment, OnnxEmbedderError> {
    let result = ENVIRONMENT.get_or_init(|| {
        let builder = ort::init_from(library).map_err(|error| error.to_string())?;
        builder.with_name("nexent").build().map_err(|error| error.to_string())
    });
    result.as_ref().map_err(|reason| OnnxEmbedderError::Runtime { path: library.to_path_buf(), reason: reason.clone() })
}

pub(crate) fn build_session(
    environment: &ort::environment::Environment,
    model: &Path,
    threads: usize,
) -> ort::Result<Session> {
    Session::builder(environment)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(threads.max(1))?
        .with_inter_threads(1)?
        .with_intra_op_spinning(false)?
        .commit_from_file(model)
}

struct Engine {
    session: Session,
    tokenizer: Tokenizer,
    wants_token_types: bool,
    output_name: String,
}

impl OnnxEmbedder {
    pub fn load(config: OnnxEmbedderConfig) -> Result<Self, OnnxEmbedderError> {
        let model_path = config.model_dir.join("model.onnx");
        let tokenizer_path = config.model_dir.join("tokenizer.json");
        for path in [&model_path, &tokenizer_path, &config.runtime_library] {
            if !path.is_file() {
                return Err(OnnxEmbedderError::MissingFile(path.clone()));
            }
        }
        let environment = environment(&config.runtime_library)?;
        let session = build_session(environment, &model_path, config.threads)
            .map_err(|error| OnnxEmbedderError::Model(error.to_string()))?;
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|error| OnnxEmbedderError::Tokenizer(error.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_SEQUENCE_TOKENS, ..Default::default() }))
            .map_err(|error| OnnxEmbedderError::Tokenizer(error.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        let wants_token_types = session.inputs().iter().any(|input| input.name() == "token_type_ids");
        let output_name = session
            .outputs()
            .iter()
            .map(|output| output.name().to_owned())
            .find(|name| name == "last_hidden_state")
            .or_else(|| session.outputs().first().map(|output| output.name().to_owned()))
            .ok_or_else(|| OnnxEmbedderError::Model("the model has no outputs".into()))?;
        let mut engine = Engine { session, tokenizer, wants_token_types, output_name };
        // One probe sentence tells the dimension and proves the model runs before we accept work.
        let probe = engine.embed_batch(&["dimension probe".to_owned()]).map_err(OnnxEmbedderError::Model)?;
        let dimension = probe.first().map(Vec::len).unwrap_or(0);
        let (jobs, receiver) = sync_channel::<Job>(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("nexent-embedder".into())
            .spawn(move || run_engine(engine, receiver))
            .map_err(|error| OnnxEmbedderError::Model(format!("cannot start the engine thread: {error}")))?;
        tracing::info!(model = %config.model_name, dimension, threads = config.threads, "embedding model loaded");
        Ok(Self { model_name: config.model_name, dimension, jobs })
    }
}

fn run_engine(mut engine: Engine, jobs: Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut waiting = vec![first];
        let mut total = waiting[0].texts.len();
        while total < COALESCE_TEXTS {
            let Ok(job) = jobs.try_recv() else { break };
            total += job.texts.len();
            waiting.push(job);
        }
        // Callers that went away (a cancelled request) are not worth the work.
        waiting.retain(|job| !job.reply.is_closed());
        let texts: Vec<String> = waiting.iter().flat_map(|job| job.texts.iter().cloned()).collect();
        match engine.embed_all(&texts) {
            Ok(vectors) => {
                let mut vectors = vectors.into_iter();
                for job in waiting {
                    let own: Vec<Vec<f32>> = vectors.by_ref().take(job.texts.len()).collect();
                    let _ = job.reply.send(Ok(own));
                }
            }
            Err(reason) => {
                for job in waiting {
                    let _ = job.reply.send(Err(EmbedError::Failed(reason.clone())));
                }
            }
        }
    }
}

/// Positions of `lengths` (bytes) in batches: sorted by length, at most [`BATCH_SIZE`] each and at most
/// [`BATCH_TOKENS`] word pieces (a text has no more pieces than bytes, plus its two markers, and at most
/// [`MAX_SEQUENCE_TOKENS`]), and a batch's longest text at most a fifth (plus a little) longer than its
/// shortest, so padding wastes little.
fn length_batches(lengths: &[usize]) -> Vec<Vec<usize>> {
    let effective = |position: usize| lengths[position].min(TRUNCATED_CHARS);
    let pieces = |position: usize| (lengths[position] + 2).min(MAX_SEQUENCE_TOKENS);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&position| effective(position));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for position in order {
        match batches.last_mut() {
            Some(batch)
                if batch.len() < BATCH_SIZE
                    && (batch.len() + 1) * pieces(position) <= BATCH_TOKENS
                    && effective(position) <= effective(batch[0]) * 6 / 5 + 16 =>
            {
                batch.push(position)
            }
            _ => batches.push(vec![position]),
        }
    }
    batches
}

impl Engine {
    /// Embeds any number of texts, in batches of similar length, returning vectors in input order.
    fn embed_all(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let lengths: Vec<usize> = texts.iter().map(String::len).collect();
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for batch in length_batches(&lengths) {
            let batch_texts: Vec<String> = batch.iter().map(|&position| texts[position].clone()).collect();
            for (position, vector) in batch.iter().zip(self.embed_batch(&batch_texts)?) {
                vectors[*position] = vector;
            }
        }
        Ok(vectors)
    }

    fn embed_batch(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|error| format!("tokenizer: {error}"))?;
        let batch = encodings.len();
        let length = encodings.first().map(|encoding| encoding.get_ids().len()).unwrap_or(0);
        if batch == 0 || length == 0 {
            return Ok(vec![Vec::new(); batch]);
        }
        let flatten = |pick: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<i64> {
            encodings.iter().flat_map(|encoding| pick(encoding).iter().map(|&value| i64::from(value))).collect()
        };
        let ids = flatten(|encoding| encoding.get_ids());
        let mask = flatten(|encoding| encoding.get_attention_mask());
        let types = flatten(|encoding| encoding.get_type_ids());
        let shape = [batch, length];
        let ids_tensor = Tensor::<i64>::from_array((shape, ids)).map_err(|error| error.to_string())?;
        let mask_tensor = Tensor::<i64>::from_array((shape, mask.clone())).map_err(|error| error.to_string())?;
        let outputs = if self.wants_token_types {
            let types_tensor = Tensor::<i64>::from_array((shape, types)).map_err(|error| error.to_string())?;
            self.session.run(ort::inputs![
                "input_ids" => ids_tensor,
                "attention_mask" => mask_tensor,
                "token_type_ids" => types_tensor
            ])
        } else {
            self.session.run(ort::inputs!["input_ids" => ids_tensor, "attention_mask" => mask_tensor])
        }
        .map_err(|error| error.to_string())?;
        let (output_shape, hidden) =
            outputs[self.output_name.as_str()].try_extract_tensor::<f32>().map_err(|error| error.to_string())?;
        let dims: Vec<usize> = output_shape.iter().map(|&dim| dim as usize).collect();
        match dims.as_slice() {
            // Per-token output [batch, tokens, hidden]: mean over the real (unmasked) tokens.
            [b, tokens, width] if *b == batch && *tokens == length => {
                let width = *width;
                let mut vectors = Vec::with_capacity(batch);
                for row in 0..batch {
                    let mut sum = vec![0.0f32; width];
                    let mut count = 0.0f32;
                    for token in 0..length {
                        if mask[row * length + token] == 0 {
                            continue;
                        }
                        count += 1.0;
                        let offset = (row * length + token) * width;
                        for (total, value) in sum.iter_mut().zip(&hidden[offset..offset + width]) {
                            *total += value;
                        }
                    }
                    if count > 0.0 {
                        sum.iter_mut().for_each(|value| *value /= count);
                    }
                    normalise(&mut sum);
                    vectors.push(sum);
                }
                Ok(vectors)
            }
            // Already pooled [batch, hidden].
            [b, width] if *b == batch => Ok(hidden
                .chunks_exact(*width)
                .map(|row| {
                    let mut vector = row.to_vec();
                    normalise(&mut vector);
                    vector
                })
                .collect()),
            other => Err(format!("unexpected output shape {other:?}")),
        }
    }
}

impl Embedder for OnnxEmbedder {
    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    /// The model embeds queries and passages alike.
    fn embed(&self, texts: Vec<String>, _kind: TextKind) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self.jobs.try_send(Job { texts, reply });
        Box::pin(async move {
            match sent {
                Ok(()) => answer.await.map_err(|_| EmbedError::Failed("the embedding engine stopped".into()))?,
                Err(TrySendError::Full(_)) => Err(EmbedError::Busy),
                Err(TrySendError::Disconnected(_)) => Err(EmbedError::Failed("the embedding engine stopped".into())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_texts_of_similar_length() {
        let lengths = [10, 500, 12, 2000, 3000, 11, 480, 5000];
        let batches = length_batches(&lengths);
        assert_eq!(batches, vec![vec![0, 5, 2], vec![6, 1], vec![3, 4, 7]]);
        let short = vec![40; 70];
        assert_eq!(length_batches(&short).iter().map(Vec::len).collect::<Vec<_>>(), [32, 32, 6]);
        // Long texts: at most BATCH_TOKENS word pieces a run, so memory stays bounded.
        let long = vec![1300; 20];
        assert_eq!(length_batches(&long).iter().map(Vec::len).collect::<Vec<_>>(), [8, 8, 4]);
        let medium = vec![100; 70];
        assert!(length_batches(&medium).iter().all(|batch| batch.len() * 102 <= BATCH_TOKENS));
    }

    /// The real model on the real runtime (fetched by `scripts/setup.sh`): the published reference values
    /// of all-MiniLM-L6-v2 for this sentence start 0.0677, 0.0635, 0.0487 (int8 stays within 0.01).
    #[tokio::test]
    async fn embeds_like_the_published_model() {
        let models_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/files");
        let embedder = OnnxEmbedder::load(OnnxEmbedderConfig::minilm(&models_dir, 1))
            .expect("model files are fetched by scripts/setup.sh");
        assert_eq!(embedder.dimension(), 384);
        let vectors = embedder
            .embed(
                vec!["This is an example sentence".into(), "Each sentence is converted".into(), String::new()],
                TextKind::Passage,
            )
            .await
            .expect("embed");
        assert_eq!(vectors.len(), 3);
        let reference = [0.067_656_86f32, 0.063_495_89, 0.048_713_11];
        for (value, expected) in vectors[0].iter().zip(reference) {
            assert!((value - expected).abs() < 0.01, "{value} vs {expected}");
        }
        let norm: f32 = vectors[1].iter().map(|value| value * value).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        let similar = embedder
            .embed(
                vec![
                    "A cat sits on the mat".into(),
                    "A kitten is sitting on a rug".into(),
                    "Quarterly revenue grew 4%".into(),
                ],
                TextKind::Passage,
            )
            .await
            .expect("embed");
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!(dot(&similar[0], &similar[1]) > dot(&similar[0], &similar[2]) + 0.2);
    }
}
