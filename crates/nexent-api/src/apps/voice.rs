//! Voice App (nexent-api.md §7): `WS /api/voice/stt/ws` streams speech in and the cumulative transcript
//! out; `WS /api/voice/tts/ws` takes `{"text"}` messages and streams audio back; `POST
//! /api/voice/connectivity` checks an engine.
//!
//! Errors on a socket are `{"error": "..."}` messages, as Nexent sends them. Nothing is buffered without
//! bound: speech-to-text reads the next frame only after the previous one is handled (a fast client meets
//! TCP backpressure), text-to-speech holds at most [`MAX_QUEUED_TEXTS`] texts and a few audio chunks, and a
//! client that stops reading for [`SEND_TIMEOUT`] is disconnected.

use std::time::Duration;

use axum::Json;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use nexent_core::config_sync::ModelRole;
use nexent_core::voice::stt_stream::SpeechToTextStream;
use nexent_core::voice::tts_stream::{self, SpeechRequest};
use nexent_core::voice::{AudioFormat, Voice, VoiceError};

use crate::AppState;
use crate::error::{ApiError, ApiJson};

/// Largest audio frame taken (1 MiB, 32 s of audio); Nexent's client sends 8 KiB frames.
pub const MAX_AUDIO_FRAME_BYTES: usize = 1024 * 1024;
/// Largest WebSocket message read at all: larger frames are refused by the protocol layer, smaller ones
/// past [`MAX_AUDIO_FRAME_BYTES`] get an error message naming the limit.
const MAX_SOCKET_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Texts one text-to-speech socket may have waiting besides the one being spoken.
pub const MAX_QUEUED_TEXTS: usize = 4;
/// A client that takes no message for this long is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// A speech-to-text socket that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct SpeechToTextQuery {
    /// ISO 639-1 code (multilingual models only; English-only models ignore it).
    pub language: Option<String>,
    /// Model name (`tiny.en`, `base`); absent: the one chosen in the settings (`STT_MODEL_NAME`), else the default.
    pub model: Option<String>,
}

#[utoipa::path(get, path = "/api/voice/stt/ws", tag = "voice", params(SpeechToTextQuery),
    responses((status = 101, description = r#"WebSocket: `{"status":"ready"}`, then binary frames of 16 kHz mono \
s16le PCM in; `{"result":{"text": <cumulative transcript>, "utterances": [...]}}` or `{"status":"processing"}` \
out per frame; an empty binary frame ends the stream with the final text (`"is_final": true`). A first text \
frame `{"language", "model"}` sets options. Errors: `{"error": "..."}`."#)))]
pub async fn speech_to_text_socket(
    State(state): State<AppState>,
    Query(mut query): Query<SpeechToTextQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let voice = state.services.voice.clone();
    // A client that names no model gets the one chosen for speech-to-text in the settings, when it is one
    // of this server's (a remote record there cannot stream through this socket).
    if query.model.is_none() {
        let chosen = state.services.config_sync.model(ModelRole::Stt).model_name;
        query.model = Some(chosen).filter(|name| !name.trim().is_empty() && voice.transcriber(Some(name)).is_ok());
    }
    upgrade
        .max_message_size(MAX_SOCKET_MESSAGE_BYTES)
        .max_frame_size(MAX_SOCKET_MESSAGE_BYTES)
        .on_upgrade(move |socket| speech_to_text_session(voice, socket, query))
}

fn json_message(value: Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

fn error_message(message: impl std::fmt::Display) -> Message {
    json_message(json!({ "error": message.to_string() }))
}

/// Closes the socket the polite way: our close frame, then whatever the client still had in flight is read
/// and dropped until its close frame (briefly), so the connection is not reset under the last message.
async fn close(mut socket: WebSocket) {
    if tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(None))).await.is_err() {
        return;
    }
    let drain = async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
}

async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await, Ok(Ok(())))
}

/// Options a client may send as its first frame (later Nexent clients do).
#[derive(Debug, Default, Deserialize)]
struct SpeechToTextOptions {
    language: Option<String>,
    model: Option<String>,
}

impl SpeechToTextOptions {
    /// `newer`'s values where it has them, ours elsewhere.
    fn merged(self, newer: SpeechToTextOptions) -> Self {
        Self { language: newer.language.or(self.language), model: newer.model.or(self.model) }
    }
}

fn options_frame(bytes: &[u8]) -> Option<SpeechToTextOptions> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if !text.starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok()
}

fn transcript_message(stream: &SpeechToTextStream, text: String, is_final: bool) -> Message {
    let utterances: Vec<Value> = stream
        .utterances()
        .into_iter()
        .map(|utterance| json!({ "text": utterance.text, "definite": utterance.definite }))
        .collect();
    let mut message = json!({
        "result": { "text": text, "utterances": utterances },
        "audio_info": { "duration": (stream.seconds_received() * 1000.0).round() as u64 },
    });
    if is_final {
        message["is_final"] = json!(true);
    }
    json_message(message)
}

async fn speech_to_text_session(voice: Voice, mut socket: WebSocket, query: SpeechToTextQuery) {
    let start = |options: &SpeechToTextOptions| -> Result<SpeechToTextStream, VoiceError> {
        let transcriber = voice.transcriber_for(options.model.as_deref(), options.language.as_deref())?;
        Ok(SpeechToTextStream::new(transcriber, options.language.clone()))
    };
    let mut options = SpeechToTextOptions { language: query.language, model: query.model };
    let mut stream = match start(&options) {
        Ok(stream) => stream,
        Err(error) => {
            send(&mut socket, error_message(error)).await;
            close(socket).await;
            return;
        }
    };
    // The model loads before "ready" (a client may send meanwhile: frames wait in the socket).
    if let Ok(transcriber) = voice.transcriber(options.model.as_deref())
        && let Err(error) = transcriber.prepare().await
    {
        send(&mut socket, error_message(error)).await;
        close(socket).await;
        return;
    }
    if !send(&mut socket, json_message(json!({ "status": "ready" }))).await {
        return;
    }
    let mut audio_started = false;
    loop {
        let message = match tokio::time::timeout(IDLE_TIMEOUT, socket.recv()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => {
                // Most often a frame beyond the socket's own limit.
                tracing::debug!(%error, "speech-to-text socket error");
                send(&mut socket, error_message(format!("WebSocket error: {error}"))).await;
                return;
            }
            // The client closed the socket: Nexent's frontend stops this way; nothing is left to say.
            Ok(None) => return,
            Err(_) => {
                send(&mut socket, error_message(format!("no audio for {} s; closing", IDLE_TIMEOUT.as_secs()))).await;
                return;
            }
        };
        // Options may come as a first text or binary JSON frame (later Nexent clients send one).
        let (bytes, is_text) = match message {
            Message::Binary(bytes) => (bytes, false),
            Message::Text(text) => (axum::body::Bytes::copy_from_slice(text.as_bytes()), true),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if !audio_started && let Some(newer) = options_frame(&bytes) {
            options = options.merged(newer);
            match start(&options) {
                Ok(restarted) => stream = restarted,
                Err(error) => {
                    send(&mut socket, error_message(error)).await;
                    close(socket).await;
                    return;
                }
            }
            continue;
        }
        if is_text {
            let reason = if options_frame(&bytes).is_some() {
                "options must come before the audio"
            } else {
                "expected binary frames of 16 kHz mono s16le PCM or a JSON options object"
            };
            if !send(&mut socket, error_message(reason)).await {
                return;
            }
            continue;
        }
        if bytes.is_empty() {
            let reply = match stream.finish().await {
                Ok(text) => transcript_message(&stream, text, true),
                Err(error) => error_message(error),
            };
            send(&mut socket, reply).await;
            close(socket).await;
            return;
        }
        if bytes.len() > MAX_AUDIO_FRAME_BYTES {
            let reply = error_message(format!(
                "a frame of {} bytes is larger than the {MAX_AUDIO_FRAME_BYTES} allowed; send audio in smaller frames \
                 (this frame was not used)",
                bytes.len()
            ));
            if !send(&mut socket, reply).await {
                return;
            }
            continue;
        }
        audio_started = true;
        let reply = match stream.push(&bytes).await {
            Ok(Some(text)) => transcript_message(&stream, text, false),
            Ok(None) => json_message(json!({ "status": "processing" })),
            Err(error) => {
                // Input the stream cannot use (a file, noise) or an engine failure: the session is over.
                send(&mut socket, error_message(error)).await;
                close(socket).await;
                return;
            }
        };
        if !send(&mut socket, reply).await {
            return;
        }
    }
}

#[utoipa::path(get, path = "/api/voice/tts/ws", tag = "voice",
    responses((status = 101, description = r#"WebSocket: `{"text": "...", "format": "mp3"|"wav"|"pcm", \
"sample_rate": 16000}` in (format and rate optional; repeatable); binary audio chunks out, one per sentence, \
then `{"status":"completed"}`. Empty text: `{"error":"No text provided"}` and the socket stays usable."#)))]
pub async fn text_to_speech_socket(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let voice = state.services.voice.clone();
    upgrade
        .max_message_size(MAX_SOCKET_MESSAGE_BYTES)
        .max_frame_size(MAX_SOCKET_MESSAGE_BYTES)
        .on_upgrade(move |socket| text_to_speech_session(voice, socket))
}

#[derive(Debug, Deserialize)]
struct TextToSpeechMessage {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    sample_rate: Option<u32>,
}

fn speech_request(text: &str) -> Result<SpeechRequest, String> {
    let message: TextToSpeechMessage =
        serde_json::from_str(text).map_err(|error| format!("expected JSON {{\"text\": \"...\"}}: {error}"))?;
    let format = match message.format.as_deref() {
        None => AudioFormat::Mp3,
        Some(name) => {
            AudioFormat::parse(name).ok_or_else(|| format!("unknown format {name:?}; use mp3, wav or pcm"))?
        }
    };
    let request = SpeechRequest { text: message.text.unwrap_or_default(), format, sample_rate: message.sample_rate };
    tts_stream::validate(&request).map_err(|error| error.to_string())?;
    Ok(request)
}

async fn text_to_speech_session(voice: Voice, socket: WebSocket) {
    let (mut sink, mut incoming) = socket.split();
    // Few messages wait for the client: a client that stops reading stops the synthesis.
    let (outgoing, mut to_send) = tokio::sync::mpsc::channel::<Message>(4);
    let writer = tokio::spawn(async move {
        while let Some(message) = to_send.recv().await {
            if !matches!(tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await, Ok(Ok(()))) {
                tracing::debug!("text-to-speech client stopped reading; closing");
                return;
            }
        }
        let _ = sink.close().await;
    });
    let (requests, mut queued) = tokio::sync::mpsc::channel::<SpeechRequest>(MAX_QUEUED_TEXTS);
    let speaker_outgoing = outgoing.clone();
    let speaker = tokio::spawn(async move {
        while let Some(request) = queued.recv().await {
            let mut audio = tts_stream::speak(voice.synthesizer().clone(), request);
            let mut failed = false;
            while let Some(chunk) = audio.next().await {
                let message = match chunk {
                    Ok(bytes) if bytes.is_empty() => continue,
                    Ok(bytes) => Message::Binary(bytes.into()),
                    Err(error) => {
                        failed = true;
                        error_message(error)
                    }
                };
                if speaker_outgoing.send(message).await.is_err() {
                    return;
                }
                if failed {
                    break;
                }
            }
            if !failed && speaker_outgoing.send(json_message(json!({ "status": "completed" }))).await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = incoming.next().await {
        let reply = match message {
            Message::Text(text) => match speech_request(text.as_str()) {
                Ok(request) => match requests.try_send(request) {
                    Ok(()) => None,
                    Err(_) => Some(error_message(format!(
                        "{MAX_QUEUED_TEXTS} texts are already waiting on this socket; wait for a \"completed\""
                    ))),
                },
                Err(message) => Some(error_message(message)),
            },
            Message::Binary(_) => Some(error_message("expected a text frame {\"text\": \"...\"}")),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => None,
        };
        if let Some(reply) = reply
            && outgoing.send(reply).await.is_err()
        {
            break;
        }
    }
    // The client is gone: what it asked for is no longer worth computing.
    speaker.abort();
    drop(outgoing);
    drop(requests);
    let _ = writer.await;
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConnectivityRequest {
    /// `stt` or `tts`.
    pub model_type: String,
    /// For `stt`: which model (the default when absent).
    #[serde(default)]
    pub model_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectivityResponse {
    pub connected: bool,
    pub model_type: String,
    pub message: String,
}

#[utoipa::path(post, path = "/api/voice/connectivity", tag = "voice", request_body = ConnectivityRequest,
    responses((status = 200, body = ConnectivityResponse, description = "whether the engine works, and what it did"),
              (status = 400, description = "model_type is neither stt nor tts")))]
pub async fn voice_connectivity(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ConnectivityRequest>,
) -> Result<Json<ConnectivityResponse>, ApiError> {
    let voice = &state.services.voice;
    let outcome = match request.model_type.as_str() {
        "stt" => voice.check_speech_to_text(request.model_name.as_deref()).await,
        "tts" => voice.check_text_to_speech().await,
        other => return Err(ApiError::BadRequest(format!("model_type must be stt or tts, not {other:?}"))),
    };
    let (connected, message) = match outcome {
        Ok(message) => (true, message),
        Err(error) => (false, error.to_string()),
    };
    Ok(Json(ConnectivityResponse { connected, model_type: request.model_type, message }))
}
