//! Choosing and loading the engines behind core's seams at start-up. A missing model never stops the
//! server: the seam gets an "unavailable" engine that says which files to fetch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nexent_core::chat::{DeferredChat, SharedChatModel, UnavailableChat};
use nexent_core::config_sync::{CONFIG_FILE_NAME, ConfigSync, ModelRole};
use nexent_core::knowledge::embedder::{Embedders, LazyEmbedder, SharedEmbedder, UnavailableEmbedder};
use nexent_core::voice::{BilingualSynthesizer, SharedSynthesizer, SharedTranscriber, UnavailableVoice, Voice};
use nexent_engines::e5_embedder::{E5_DIMENSION, E5_MODEL_NAME, E5_SIMILARITY_FLOOR, E5Embedder, E5EmbedderConfig};
use nexent_engines::espeak_voice::{EspeakVoice, EspeakVoiceConfig};
use nexent_engines::llama_chat::{LlamaChat, LlamaChatConfig};
use nexent_engines::onnx_embedder::{MINILM_DIMENSION, MINILM_MODEL_NAME, OnnxEmbedder, OnnxEmbedderConfig};
use nexent_engines::piper::{PiperConfig, PiperSynthesizer};
use nexent_engines::remote_chat::RemoteChat;
use nexent_engines::remote_embedder::RemoteEmbedder;
use nexent_engines::whisper_sidecar::{WhisperSidecar, WhisperSidecarConfig};

use crate::settings::Settings;

/// The default chat model's file in the models folder (`python3 models/fetch.py llm`).
pub const DEFAULT_CHAT_MODEL_FILE: &str = "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf";
/// The default speech-to-text model (`python3 models/fetch.py stt` converts it).
pub const DEFAULT_STT_MODEL_FILE: &str = "ggml-tiny.en.bin";

/// The chat model: with no `--chat-model`, the one Config Sync names (`LLM_MODEL_URL`, with
/// `LLM_MODEL_NAME` and `LLM_API_KEY`, as Nexent's settings page writes them): a remote OpenAI-compatible
/// server, or a local GGUF file when the URL is its path; else `--chat-model`, the default file in the
/// models folder, or any GGUF file there. A local model
/// loads in the background (start-up does not wait); requests made meanwhile wait for it.
pub fn load_chat_model(settings: &Settings) -> SharedChatModel {
    let configured = if settings.chat_model.is_none() { chat_model_from_config(&settings.data_dir) } else { None };
    let path = match configured {
        Some(ConfiguredChat::Remote(model)) => return model,
        Some(ConfiguredChat::Local(path)) => Some(path),
        None => choose_chat_model(settings),
    };
    let Some(path) = path else {
        let reason = format!(
            "no chat model: put a .gguf file in {} (python3 models/fetch.py llm) or pass --chat-model",
            settings.models_dir.display()
        );
        tracing::warn!(%reason, "chat is unavailable");
        return Arc::new(UnavailableChat { model_name: "none".into(), reason });
    };
    let mut config = LlamaChatConfig::new(&path);
    config.context_tokens = settings.llm_context;
    config.speculation = settings.speculation.clone();
    if let Some(threads) = settings.llm_threads {
        config.threads = threads;
    }
    if let Some(threads) = settings.llm_batch_threads {
        config.batch_threads = threads;
    }
    let name = config.model_name.clone();
    let models_dir = settings.models_dir.clone();
    Arc::new(DeferredChat::spawn(name.clone(), move || {
        if let Err(reason) = crate::model_files::check(&config.model_path, &models_dir) {
            tracing::warn!(%reason, "chat is unavailable");
            return Arc::new(UnavailableChat { model_name: name, reason }) as SharedChatModel;
        }
        match LlamaChat::load(config) {
            Ok(model) => Arc::new(model) as SharedChatModel,
            Err(error) => {
                let reason = error.to_string();
                tracing::warn!(%reason, "chat is unavailable");
                Arc::new(UnavailableChat { model_name: name, reason })
            }
        }
    }))
}

/// The chat model Config Sync names.
enum ConfiguredChat {
    /// A GGUF file: Model Management writes a local record's file path as the model's URL.
    Local(PathBuf),
    Remote(SharedChatModel),
}

/// What `LLM_MODEL_URL` names: a GGUF file that is there, or a remote server that can be reached for;
/// None (with a warning) when it names a missing file or a URL that cannot be used.
fn chat_model_from_config(data_dir: &Path) -> Option<ConfiguredChat> {
    let config = ConfigSync::open(&data_dir.join(CONFIG_FILE_NAME)).ok()?;
    let chosen = config.model(ModelRole::Llm);
    let url = chosen.model_url.trim();
    if url.is_empty() {
        return None;
    }
    let path = Path::new(url);
    if path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("gguf")) {
        if path.is_file() {
            tracing::info!(model = %path.display(), "using the chat model chosen in the settings");
            return Some(ConfiguredChat::Local(path.to_path_buf()));
        }
        tracing::warn!(model = %path.display(), "the chat model chosen in the settings is gone; using the default");
        return None;
    }
    match RemoteChat::new(url, Some(chosen.api_key), &chosen.model_name) {
        Ok(model) => {
            tracing::info!(model = %chosen.model_name, "using a remote chat model");
            Some(ConfiguredChat::Remote(Arc::new(model)))
        }
        Err(error) => {
            tracing::warn!(%error, "cannot use the remote chat model; using a local one");
            None
        }
    }
}

fn choose_chat_model(settings: &Settings) -> Option<PathBuf> {
    if let Some(path) = &settings.chat_model {
        return Some(path.clone());
    }
    let default = settings.models_dir.join(DEFAULT_CHAT_MODEL_FILE);
    if default.is_file() {
        return Some(default);
    }
    nexent_core::models::gguf_files(&settings.models_dir).into_iter().next()
}

/// Every embedding model the server offers, the default for new knowledge bases first: a remote
/// OpenAI-compatible embedder when Config Sync names one (`EMBEDDING_MODEL_URL`, with `EMBEDDING_MODEL_NAME`,
/// `EMBEDDING_API_KEY`, `EMBEDDING_DIMENSION`), else the local model `--embedding-model` names; then the
/// other local models. Local models load on first use, so one no base uses costs nothing.
pub fn load_embedders(settings: &Settings) -> Embedders {
    let threads = settings.embed_threads;
    let minilm_models = settings.models_dir.clone();
    let minilm: SharedEmbedder = Arc::new(LazyEmbedder::new(MINILM_MODEL_NAME, MINILM_DIMENSION, move || {
        OnnxEmbedder::load(OnnxEmbedderConfig::minilm(&minilm_models, threads))
            .map(|embedder| Arc::new(embedder) as SharedEmbedder)
            .map_err(|error| unavailable_reason(&error.to_string()))
    }));
    let e5_models = settings.models_dir.clone();
    let e5: SharedEmbedder = Arc::new(
        LazyEmbedder::new(E5_MODEL_NAME, E5_DIMENSION, move || {
            E5Embedder::load(E5EmbedderConfig::new(&e5_models, threads))
                .map(|embedder| Arc::new(embedder) as SharedEmbedder)
                .map_err(|error| unavailable_reason(&error.to_string()))
        })
        .with_similarity_floor(E5_SIMILARITY_FLOOR),
    );
    let (chosen, other): (Vec<SharedEmbedder>, Vec<SharedEmbedder>) =
        [minilm, e5].into_iter().partition(|embedder| embedder.model_name() == settings.embedding_model);
    let locals: Vec<SharedEmbedder> = chosen.into_iter().chain(other).collect();
    match remote_embedder_from_config(&settings.data_dir) {
        Some(remote) => Embedders::new(remote, locals),
        None => {
            let mut locals = locals.into_iter();
            let default = locals.next().unwrap_or_else(|| {
                Arc::new(UnavailableEmbedder {
                    model_name: MINILM_MODEL_NAME.to_owned(),
                    dimension: MINILM_DIMENSION,
                    reason: "no local embedding model".into(),
                })
            });
            Embedders::new(default, locals.collect())
        }
    }
}

fn unavailable_reason(error: &str) -> String {
    let reason = format!("{error} (run `python3 models/fetch.py embedding` and pass --models-dir)");
    tracing::warn!(%reason, "a local embedding model cannot be loaded");
    reason
}

fn remote_embedder_from_config(data_dir: &Path) -> Option<SharedEmbedder> {
    let config = ConfigSync::open(&data_dir.join(CONFIG_FILE_NAME)).ok()?;
    let url = config.get("EMBEDDING_MODEL_URL").filter(|url| !url.trim().is_empty())?;
    let name = config.get("EMBEDDING_MODEL_NAME").unwrap_or_default();
    let Some(dimension) = config.get("EMBEDDING_DIMENSION").and_then(|value| value.trim().parse::<usize>().ok()) else {
        tracing::warn!("EMBEDDING_MODEL_URL is set without EMBEDDING_DIMENSION; using the local model");
        return None;
    };
    match RemoteEmbedder::new(&url, config.get("EMBEDDING_API_KEY"), &name, dimension) {
        Ok(embedder) => {
            tracing::info!(model = %name, dimension, "using a remote embedding model");
            Some(Arc::new(embedder))
        }
        Err(error) => {
            tracing::warn!(%error, "cannot use the remote embedding model; using the local one");
            None
        }
    }
}

/// The speech engines: whisper.cpp (through the `nexent-stt` helper) for every `ggml-*.bin` in the models
/// folder, tiny.en first (the default), and the Piper voice. A missing piece leaves that engine saying why.
pub fn load_voice(settings: &Settings) -> Voice {
    let mut models: Vec<PathBuf> = std::fs::read_dir(&settings.models_dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.starts_with("ggml-") && name.ends_with(".bin"))
                })
                .collect()
        })
        .unwrap_or_default();
    models.sort_by_key(|path| (!path.ends_with(DEFAULT_STT_MODEL_FILE), path.clone()));
    let mut transcribers: Vec<SharedTranscriber> = Vec::new();
    for model in models {
        let config = WhisperSidecarConfig {
            helper: settings.stt_helper.clone(),
            model_name: WhisperSidecarConfig::model_name_of(&model),
            model,
            threads: settings.voice_threads,
        };
        match WhisperSidecar::new(config) {
            Ok(transcriber) => transcribers.push(Arc::new(transcriber)),
            Err(error) => tracing::warn!(%error, "speech-to-text is unavailable"),
        }
    }
    if transcribers.is_empty() {
        let reason = format!(
            "no speech-to-text model: run `python3 models/fetch.py stt` and build nexent-stt (`make build`); looked for \
             ggml-*.bin in {} and the helper at {}",
            settings.models_dir.display(),
            settings.stt_helper.display()
        );
        transcribers.push(Arc::new(UnavailableVoice { name: "tiny.en".into(), reason }));
    }
    let english: SharedSynthesizer =
        match PiperSynthesizer::load(PiperConfig::joe(&settings.models_dir, settings.voice_threads)) {
            Ok(voice) => Arc::new(voice),
            Err(error) => {
                let reason = format!("{error} (run `python3 models/fetch.py tts`)");
                tracing::warn!(%reason, "text-to-speech is unavailable");
                Arc::new(UnavailableVoice { name: "en_US-joe-medium".into(), reason })
            }
        };
    // No Chinese Piper voice exists in the registries: Chinese sentences are spoken by espeak-ng's Mandarin.
    let chinese: SharedSynthesizer = Arc::new(EspeakVoice::new(EspeakVoiceConfig::mandarin()));
    Voice::new(transcribers, Arc::new(BilingualSynthesizer { default: english, chinese }))
}
