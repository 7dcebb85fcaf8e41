//! The engines behind Model Management's records: the loaded local chat model, other GGUF files of the
//! models folder (loaded for the call, on their own thread), the in-process embedder, and remote
//! OpenAI-compatible servers.
//!
//! A file is never loaded twice at once: [`LlamaChat::load`] shares an engine already loaded from the same
//! file (the chat model under another name, a health check running beside another) and makes concurrent
//! loads of one file wait for the first, so six health checks of a model cost one copy of it, dropped
//! when the last check ends.

use std::path::PathBuf;
use std::sync::Arc;

use nexent_core::chat::{ChatError, DeferredChat, SharedChatModel, UnavailableChat};
use nexent_core::knowledge::embedder::{Embedders, SharedEmbedder};
use nexent_core::models::{ModelConnector, ModelRecord};

use crate::llama_chat::{LlamaChat, LlamaChatConfig};
use crate::remote_chat::RemoteChat;
use crate::remote_embedder::RemoteEmbedder;

pub struct EngineConnector {
    pub chat: SharedChatModel,
    pub embedders: Embedders,
    pub models_dir: PathBuf,
    pub llm_threads: usize,
}

impl ModelConnector for EngineConnector {
    fn chat_model(&self, record: &ModelRecord) -> Result<SharedChatModel, ChatError> {
        if !record.is_local() {
            let key = Some(record.api_key.clone());
            return Ok(Arc::new(RemoteChat::new(&record.base_url, key, &record.full_name())?));
        }
        if record.model_name == self.chat.model_name() {
            return Ok(self.chat.clone());
        }
        let path = self.models_dir.join(format!("{}.gguf", record.model_name));
        let mut config = LlamaChatConfig::new(&path);
        config.threads = self.llm_threads;
        config.context_tokens = 1024;
        let name = record.model_name.clone();
        Ok(Arc::new(DeferredChat::spawn(name.clone(), move || match LlamaChat::load(config) {
            Ok(model) => Arc::new(model) as SharedChatModel,
            Err(error) => Arc::new(UnavailableChat { model_name: name, reason: error.to_string() }),
        })))
    }

    fn embedder(&self, record: &ModelRecord) -> Result<SharedEmbedder, String> {
        if let Some(embedder) = self.embedders.get(&record.model_name).filter(|_| record.base_url.is_empty()) {
            return Ok(embedder.clone());
        }
        if record.is_local() {
            return Ok(self.embedders.default_embedder().clone());
        }
        let key = Some(record.api_key.clone());
        RemoteEmbedder::new(&record.base_url, key, &record.full_name(), 0)
            .map(|embedder| Arc::new(embedder) as SharedEmbedder)
            .map_err(|error| error.to_string())
    }

    fn local_embedding_models(&self) -> Vec<String> {
        let local = [crate::e5_embedder::E5_MODEL_NAME, crate::onnx_embedder::MINILM_MODEL_NAME];
        self.embedders
            .all()
            .map(|embedder| embedder.model_name().to_owned())
            .filter(|name| local.contains(&name.as_str()))
            .collect()
    }
}
