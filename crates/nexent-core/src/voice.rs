//! The Voice App's domain: speech-to-text and text-to-speech seams, and the streaming logic on top of them.
//!
//! - [`Transcriber`] turns one utterance (16 kHz mono signed 16-bit samples) into text; [`Synthesizer`]
//!   turns one sentence into audio in the format asked for. Implementations (whisper.cpp in the `nexent-stt`
//!   helper process, Piper on ONNX Runtime) live in `nexent-engines` and never run on the async runtime.
//! - [`segmenter`] cuts a live stream into utterances with an energy voice-activity detector, so whisper
//!   sees one utterance at a time instead of a 30-second window per chunk.
//! - [`stt_stream::SpeechToTextStream`] is one `/api/voice/stt/ws` session: bytes in, the cumulative
//!   transcript out (partials while someone speaks, final text per utterance).
//! - [`sentences`] splits text for synthesis sentence by sentence, so the first audio comes early;
//!   [`tts_stream`] streams a text's audio chunks in order.

pub mod segmenter;
pub mod sentences;
pub mod stt_stream;
pub mod tts_stream;

use std::sync::Arc;

use futures::future::BoxFuture;

/// Sample rate of every audio the transcribers take (Nexent's clients send 16 kHz PCM).
pub const STT_SAMPLE_RATE: u32 = 16_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoiceError {
    /// The engine is not installed or could not start; the message says what is missing.
    #[error("{0}")]
    Unavailable(String),
    #[error("the {0} engine is busy; try again shortly")]
    Busy(&'static str),
    /// The client's input cannot be used; the message says why.
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Failed(String),
}

/// One utterance to transcribe.
#[derive(Debug, Clone, Default)]
pub struct TranscribeRequest {
    /// 16 kHz mono samples.
    pub samples: Vec<i16>,
    /// ISO 639-1 code; none for the model's default (English for English-only models, detection otherwise).
    pub language: Option<String>,
    /// What was said just before (the previous utterance's text), which keeps names spelled consistently.
    pub previous_text: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    pub text: String,
}

pub trait Transcriber: Send + Sync {
    /// Model name as clients ask for it (`tiny.en`, `base`).
    fn model_name(&self) -> &str;
    /// Whether the model understands languages other than English.
    fn multilingual(&self) -> bool;
    /// Makes the engine ready (starts a helper, loads the model), so the first utterance is not slowed.
    fn prepare(&self) -> BoxFuture<'static, Result<(), VoiceError>>;
    fn transcribe(&self, request: TranscribeRequest) -> BoxFuture<'static, Result<Transcript, VoiceError>>;
}

pub type SharedTranscriber = Arc<dyn Transcriber>;

/// How audio leaves the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// MP3 (what Nexent's clients play); each sentence is a complete MP3 stream, so chunks concatenate.
    Mp3,
    /// A WAV header (with the streaming "unknown length" sizes) and then PCM.
    Wav,
    /// Signed 16-bit little-endian mono PCM.
    Pcm,
}

impl AudioFormat {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "mp3" => Some(Self::Mp3),
            "wav" => Some(Self::Wav),
            "pcm" | "raw" | "s16le" => Some(Self::Pcm),
            _ => None,
        }
    }
}

/// What a synthesizer produces for one sentence: MP3 or PCM (WAV is PCM behind one header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioEncoding {
    Mp3,
    Pcm16,
}

pub trait Synthesizer: Send + Sync {
    fn voice_name(&self) -> &str;
    /// The rate the voice speaks at; other rates are resampled.
    fn native_sample_rate(&self) -> u32;
    /// Synthesises one sentence at `sample_rate`, encoded as asked.
    fn synthesize(
        &self,
        text: String,
        encoding: AudioEncoding,
        sample_rate: u32,
    ) -> BoxFuture<'static, Result<Vec<u8>, VoiceError>>;
    /// The voices behind this synthesizer, each with the languages it speaks, for the model list.
    fn voices(&self) -> Vec<(String, &'static str)> {
        vec![(self.voice_name().to_owned(), "English")]
    }
}

pub type SharedSynthesizer = Arc<dyn Synthesizer>;

/// Two voices behind one synthesizer, chosen per sentence: Chinese sentences to `chinese`, the others to
/// `default`, so an answer that mixes the languages switches voices between sentences.
pub struct BilingualSynthesizer {
    pub default: SharedSynthesizer,
    pub chinese: SharedSynthesizer,
}

impl BilingualSynthesizer {
    fn voice_for(&self, sentence: &str) -> &SharedSynthesizer {
        if crate::language::is_chinese(sentence) { &self.chinese } else { &self.default }
    }
}

impl Synthesizer for BilingualSynthesizer {
    fn voice_name(&self) -> &str {
        self.default.voice_name()
    }

    fn native_sample_rate(&self) -> u32 {
        self.default.native_sample_rate()
    }

    fn synthesize(
        &self,
        text: String,
        encoding: AudioEncoding,
        sample_rate: u32,
    ) -> BoxFuture<'static, Result<Vec<u8>, VoiceError>> {
        self.voice_for(&text).synthesize(text, encoding, sample_rate)
    }

    fn voices(&self) -> Vec<(String, &'static str)> {
        vec![(self.default.voice_name().to_owned(), "English"), (self.chinese.voice_name().to_owned(), "Chinese")]
    }
}

/// Stands in when an engine could not be set up, so the server still starts and says why on use.
pub struct UnavailableVoice {
    pub name: String,
    pub reason: String,
}

impl Transcriber for UnavailableVoice {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn multilingual(&self) -> bool {
        false
    }

    fn prepare(&self) -> BoxFuture<'static, Result<(), VoiceError>> {
        self.fail()
    }

    fn transcribe(&self, _request: TranscribeRequest) -> BoxFuture<'static, Result<Transcript, VoiceError>> {
        self.fail()
    }
}

impl Synthesizer for UnavailableVoice {
    fn voice_name(&self) -> &str {
        &self.name
    }

    fn native_sample_rate(&self) -> u32 {
        22_050
    }

    fn synthesize(&self, _: String, _: AudioEncoding, _: u32) -> BoxFuture<'static, Result<Vec<u8>, VoiceError>> {
        self.fail()
    }
}

impl UnavailableVoice {
    /// Every use answers with the reason the engine is missing.
    fn fail<T: Send + 'static>(&self) -> BoxFuture<'static, Result<T, VoiceError>> {
        let reason = self.reason.clone();
        Box::pin(async move { Err(VoiceError::Unavailable(reason)) })
    }
}

/// The voice engines the server has: transcribers by model name (the first is the default) and a voice.
#[derive(Clone)]
pub struct Voice {
    transcribers: Vec<SharedTranscriber>,
    synthesizer: SharedSynthesizer,
}

impl Voice {
    pub fn new(transcribers: Vec<SharedTranscriber>, synthesizer: SharedSynthesizer) -> Self {
        Self { transcribers, synthesizer }
    }

    /// No engines: every use says so.
    pub fn unavailable(reason: &str) -> Self {
        let engine = Arc::new(UnavailableVoice { name: "none".into(), reason: reason.to_owned() });
        Self { transcribers: vec![engine.clone()], synthesizer: engine }
    }

    /// The transcriber for `model` (by name, or by the name without its `.en`), or the default.
    pub fn transcriber(&self, model: Option<&str>) -> Result<SharedTranscriber, VoiceError> {
        let Some(model) = model.filter(|model| !model.trim().is_empty()) else {
            return self
                .transcribers
                .first()
                .cloned()
                .ok_or_else(|| VoiceError::Unavailable("no speech-to-text model is configured".into()));
        };
        let wanted = model.trim().to_ascii_lowercase();
        self.transcribers
            .iter()
            .find(|transcriber| {
                let name = transcriber.model_name().to_ascii_lowercase();
                name == wanted || name.trim_end_matches(".en") == wanted
            })
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = self.transcribers.iter().map(|transcriber| transcriber.model_name()).collect();
                VoiceError::InvalidInput(format!(
                    "unknown speech-to-text model {model:?}; this server has {}",
                    known.join(", ")
                ))
            })
    }

    /// The transcriber for `model` that can hear `language`. With no model named, a language other than
    /// English picks the first multilingual model (the default, tiny.en, is English only); an
    /// English-only model named for another language is an error that names a model that can, rather than
    /// English words made of it.
    pub fn transcriber_for(
        &self,
        model: Option<&str>,
        language: Option<&str>,
    ) -> Result<SharedTranscriber, VoiceError> {
        let language = language.map(str::trim).filter(|language| !language.is_empty());
        let needs_multilingual = language.is_some_and(|language| !language.eq_ignore_ascii_case("en"));
        let model = model.map(str::trim).filter(|model| !model.is_empty());
        if model.is_none()
            && needs_multilingual
            && let Some(multilingual) = self.transcribers.iter().find(|candidate| candidate.multilingual())
        {
            return Ok(multilingual.clone());
        }
        let transcriber = self.transcriber(model)?;
        if let Some(language) = language
            && !language.eq_ignore_ascii_case("en")
            && !transcriber.multilingual()
        {
            let multilingual: Vec<&str> = self
                .transcribers
                .iter()
                .filter(|candidate| candidate.multilingual())
                .map(|candidate| candidate.model_name())
                .collect();
            let advice = if multilingual.is_empty() {
                "fetch the multilingual base model (python3 models/fetch.py stt-base) and restart".to_owned()
            } else {
                format!("ask for model {}", multilingual.join(" or "))
            };
            return Err(VoiceError::InvalidInput(format!(
                "{} understands English only, not {language:?}; {advice}",
                transcriber.model_name()
            )));
        }
        Ok(transcriber)
    }

    pub fn transcribers(&self) -> &[SharedTranscriber] {
        &self.transcribers
    }

    pub fn synthesizer(&self) -> &SharedSynthesizer {
        &self.synthesizer
    }

    /// Health check of a transcriber: it starts and transcribes a second of audio.
    pub async fn check_speech_to_text(&self, model: Option<&str>) -> Result<String, VoiceError> {
        // A record's name may be anything; the default model answers for names this server does not have.
        let transcriber = self.transcriber(model).or_else(|_| self.transcriber(None))?;
        let started = std::time::Instant::now();
        transcriber.prepare().await?;
        let request = TranscribeRequest { samples: vec![0; STT_SAMPLE_RATE as usize], ..Default::default() };
        transcriber.transcribe(request).await?;
        Ok(format!(
            "{} transcribed a second of audio in {} ms",
            transcriber.model_name(),
            started.elapsed().as_millis()
        ))
    }

    /// Health check of the voice: it speaks a word.
    pub async fn check_text_to_speech(&self) -> Result<String, VoiceError> {
        let started = std::time::Instant::now();
        let rate = self.synthesizer.native_sample_rate();
        let audio = self.synthesizer.synthesize("Hello.".into(), AudioEncoding::Pcm16, rate).await?;
        if audio.is_empty() {
            return Err(VoiceError::Failed("the voice produced no audio".into()));
        }
        let seconds = audio.len() as f64 / 2.0 / f64::from(rate);
        Ok(format!(
            "{} spoke {seconds:.1} s of audio in {} ms",
            self.synthesizer.voice_name(),
            started.elapsed().as_millis()
        ))
    }
}

/// Signed 16-bit little-endian bytes of `samples`.
pub fn pcm16_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|sample| sample.to_le_bytes()).collect()
}

/// A 44-byte WAV header for a mono 16-bit stream. `data_bytes` none writes the sizes streaming players
/// read as "until the end" (0xFFFFFFFF), since a streamed answer's length is not known up front.
pub fn wav_header(sample_rate: u32, data_bytes: Option<u32>) -> Vec<u8> {
    let data = data_bytes.unwrap_or(u32::MAX);
    let riff = data_bytes.map_or(u32::MAX, |bytes| bytes.saturating_add(36));
    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&riff.to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes()); // PCM
    header.extend_from_slice(&1u16.to_le_bytes()); // mono
    header.extend_from_slice(&sample_rate.to_le_bytes());
    header.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data.to_le_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_header_describes_mono_16_bit_audio() {
        let header = wav_header(16_000, Some(32_000));
        assert_eq!(header.len(), 44);
        assert_eq!(&header[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes([header[4], header[5], header[6], header[7]]), 32_036);
        assert_eq!(u32::from_le_bytes([header[24], header[25], header[26], header[27]]), 16_000);
        assert_eq!(u32::from_le_bytes([header[40], header[41], header[42], header[43]]), 32_000);
        let streaming = wav_header(22_050, None);
        assert_eq!(&streaming[40..44], &[0xFF; 4]);
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!(AudioFormat::parse("MP3"), Some(AudioFormat::Mp3));
        assert_eq!(AudioFormat::parse("pcm"), Some(AudioFormat::Pcm));
        assert_eq!(AudioFormat::parse("ogg"), None);
    }

    #[test]
    fn transcribers_are_found_by_name_with_or_without_dot_en() {
        let tiny: SharedTranscriber = Arc::new(UnavailableVoice { name: "tiny.en".into(), reason: "x".into() });
        let base: SharedTranscriber = Arc::new(UnavailableVoice { name: "base".into(), reason: "x".into() });
        let voice = Voice::new(vec![tiny, base], Arc::new(UnavailableVoice { name: "v".into(), reason: "x".into() }));
        assert_eq!(voice.transcriber(None).map(|t| t.model_name().to_owned()), Ok("tiny.en".into()));
        assert_eq!(voice.transcriber(Some("tiny")).map(|t| t.model_name().to_owned()), Ok("tiny.en".into()));
        assert_eq!(voice.transcriber(Some("BASE")).map(|t| t.model_name().to_owned()), Ok("base".into()));
        assert!(matches!(voice.transcriber(Some("large")), Err(VoiceError::InvalidInput(_))));
        let refused = voice.transcriber_for(Some("tiny.en"), Some("zh")).map(|t| t.model_name().to_owned());
        assert!(
            matches!(refused, Err(VoiceError::InvalidInput(ref message)) if message.contains("stt-base")),
            "{refused:?}"
        );
        assert!(voice.transcriber_for(Some("tiny.en"), Some("en")).is_ok());
    }

    struct Hears(&'static str, bool);

    impl Transcriber for Hears {
        fn model_name(&self) -> &str {
            self.0
        }
        fn multilingual(&self) -> bool {
            self.1
        }
        fn prepare(&self) -> BoxFuture<'static, Result<(), VoiceError>> {
            Box::pin(async { Ok(()) })
        }
        fn transcribe(&self, _request: TranscribeRequest) -> BoxFuture<'static, Result<Transcript, VoiceError>> {
            Box::pin(async { Ok(Transcript::default()) })
        }
    }

    #[test]
    fn a_language_other_than_english_picks_a_multilingual_model_when_none_is_named() {
        let voice = Voice::new(
            vec![Arc::new(Hears("tiny.en", false)), Arc::new(Hears("base", true))],
            Arc::new(UnavailableVoice { name: "v".into(), reason: "x".into() }),
        );
        let chosen = |model: Option<&str>, language: Option<&str>| {
            voice.transcriber_for(model, language).map(|transcriber| transcriber.model_name().to_owned())
        };
        assert_eq!(chosen(None, None), Ok("tiny.en".into()), "the fast English default");
        assert_eq!(chosen(None, Some("en")), Ok("tiny.en".into()));
        assert_eq!(chosen(None, Some("zh")), Ok("base".into()));
        assert_eq!(chosen(Some(" "), Some("zh")), Ok("base".into()), "a blank model names none");
        assert_eq!(chosen(Some("base"), None), Ok("base".into()), "the language is then detected");
        assert!(chosen(Some("tiny.en"), Some("zh")).is_err(), "a named model is honoured or refused");
    }
}
