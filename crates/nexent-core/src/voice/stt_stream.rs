//! One live speech-to-text session (`/api/voice/stt/ws`): bytes of 16 kHz s16le PCM in, the cumulative
//! transcript out.
//!
//! The [`Segmenter`] cuts the stream into utterances. A closed utterance is transcribed once, for good; the
//! utterance still being spoken is transcribed again as it grows (a partial), at most once per
//! [`PARTIAL_INTERVAL`] and only after another second of it, so a client sending faster than real time
//! does not pay for a partial per chunk. The transcript is the closed utterances' texts followed by the
//! latest partial.
//!
//! Frames are byte chunks of one stream: a sample split across two frames (an odd-length frame) is joined
//! again. A stream that starts like a compressed file or sounds like random bytes is refused with a
//! message instead of being transcribed into nonsense; a WAV header of the right format is skipped.

use std::time::{Duration, Instant};

use super::segmenter::Segmenter;
use super::{STT_SAMPLE_RATE, SharedTranscriber, TranscribeRequest, VoiceError};

/// Shortest wall time between two partial transcripts of one utterance.
pub const PARTIAL_INTERVAL: Duration = Duration::from_millis(700);
/// A partial needs this much more audio than the previous one (1 s).
const PARTIAL_GROWTH_SAMPLES: usize = STT_SAMPLE_RATE as usize;
/// Bytes looked at to tell PCM from a file or noise (1 s of audio).
const SNIFF_SAMPLES: usize = STT_SAMPLE_RATE as usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utterance {
    pub text: String,
    /// False while the utterance is still being spoken (the text may change).
    pub definite: bool,
}

pub struct SpeechToTextStream {
    transcriber: SharedTranscriber,
    language: Option<String>,
    segmenter: Segmenter,
    /// The first byte of a sample whose second byte is in the next frame.
    odd_byte: Option<u8>,
    /// The stream's first bytes, until there are enough to tell what they are.
    sniffed: Option<Vec<u8>>,
    closed: Vec<String>,
    partial: Option<String>,
    partial_samples: usize,
    last_partial: Option<Instant>,
    samples_received: u64,
}

impl SpeechToTextStream {
    pub fn new(transcriber: SharedTranscriber, language: Option<String>) -> Self {
        Self {
            transcriber,
            language: language.filter(|language| !language.trim().is_empty()),
            segmenter: Segmenter::new(),
            odd_byte: None,
            sniffed: Some(Vec::new()),
            closed: Vec::new(),
            partial: None,
            partial_samples: 0,
            last_partial: None,
            samples_received: 0,
        }
    }

    /// Seconds of audio received so far.
    pub fn seconds_received(&self) -> f64 {
        self.samples_received as f64 / f64::from(STT_SAMPLE_RATE)
    }

    /// Adds one frame. `Some(transcript)` when the transcript changed, `None` when there is nothing new.
    pub async fn push(&mut self, bytes: &[u8]) -> Result<Option<String>, VoiceError> {
        let before = self.transcript();
        let Some(bytes) = self.sniff(bytes)? else { return Ok(None) };
        let samples = self.samples(&bytes);
        self.samples_received += samples.len() as u64;
        for utterance in self.segmenter.push(&samples) {
            self.close_utterance(utterance).await?;
        }
        self.maybe_partial().await?;
        let after = self.transcript();
        Ok((after != before).then_some(after))
    }

    /// Ends the stream: transcribes what is still open and returns the final transcript.
    pub async fn finish(&mut self) -> Result<String, VoiceError> {
        if let Some(bytes) = self.sniffed.take().filter(|bytes| !bytes.is_empty()) {
            // Less than a second arrived: too little to judge, so it is taken as PCM.
            let samples = self.samples(&bytes);
            self.samples_received += samples.len() as u64;
            for utterance in self.segmenter.push(&samples) {
                self.close_utterance(utterance).await?;
            }
        }
        if let Some(utterance) = self.segmenter.finish() {
            self.close_utterance(utterance).await?;
        }
        self.partial = None;
        Ok(self.transcript())
    }

    /// The closed utterances' texts and the latest partial, joined by spaces.
    pub fn transcript(&self) -> String {
        let mut parts: Vec<&str> = self.closed.iter().map(String::as_str).collect();
        parts.extend(self.partial.as_deref());
        parts.into_iter().filter(|part| !part.is_empty()).collect::<Vec<_>>().join(" ")
    }

    pub fn utterances(&self) -> Vec<Utterance> {
        let mut utterances: Vec<Utterance> =
            self.closed.iter().map(|text| Utterance { text: text.clone(), definite: true }).collect();
        if let Some(partial) = &self.partial {
            utterances.push(Utterance { text: partial.clone(), definite: false });
        }
        utterances
    }

    /// Holds the first second of the stream back until it can be judged; then lets everything through.
    fn sniff(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>, VoiceError> {
        let Some(buffer) = self.sniffed.as_mut() else { return Ok(Some(bytes.to_vec())) };
        buffer.extend_from_slice(bytes);
        if let Some(problem) = container_problem(buffer) {
            return Err(VoiceError::InvalidInput(problem));
        }
        if let Some(skip) = wav_data_offset(buffer)? {
            buffer.drain(..skip);
        } else if buffer.len() < 12 {
            return Ok(None);
        }
        if buffer.len() < SNIFF_SAMPLES * 2 {
            return Ok(None);
        }
        let buffer = self.sniffed.take().unwrap_or_default();
        if sounds_like_random_bytes(&buffer) {
            return Err(VoiceError::InvalidInput(
                "this does not sound like speech in 16 kHz mono signed 16-bit little-endian PCM (it is as loud \
                 and as rough as random bytes: compressed audio, another sample format, or not audio)"
                    .into(),
            ));
        }
        Ok(Some(buffer))
    }

    fn samples(&mut self, bytes: &[u8]) -> Vec<i16> {
        let mut samples = Vec::with_capacity(bytes.len() / 2 + 1);
        let mut rest = bytes;
        if let Some(first) = self.odd_byte.take() {
            match rest.split_first() {
                Some((second, tail)) => {
                    samples.push(i16::from_le_bytes([first, *second]));
                    rest = tail;
                }
                None => self.odd_byte = Some(first),
            }
        }
        let pairs = rest.chunks_exact(2);
        if let [last] = pairs.remainder() {
            self.odd_byte = Some(*last);
        }
        samples.extend(pairs.map(|pair| i16::from_le_bytes([pair[0], pair[1]])));
        samples
    }

    async fn close_utterance(&mut self, samples: Vec<i16>) -> Result<(), VoiceError> {
        let text = self.transcribe(samples).await?;
        self.closed.push(text);
        self.partial = None;
        self.partial_samples = 0;
        self.last_partial = None;
        Ok(())
    }

    async fn maybe_partial(&mut self) -> Result<(), VoiceError> {
        let Some(open) = self.segmenter.open_utterance() else { return Ok(()) };
        let grown = open.len() >= self.partial_samples + PARTIAL_GROWTH_SAMPLES;
        let rested = self.last_partial.is_none_or(|at| at.elapsed() >= PARTIAL_INTERVAL);
        if !(grown && rested) {
            return Ok(());
        }
        let samples = open.to_vec();
        self.partial_samples = samples.len();
        let text = self.transcribe(samples).await?;
        self.last_partial = Some(Instant::now());
        self.partial = Some(text);
        Ok(())
    }

    async fn transcribe(&self, samples: Vec<i16>) -> Result<String, VoiceError> {
        let request = TranscribeRequest {
            samples,
            language: self.language.clone(),
            // Not the previous utterance as a prompt: tiny models then often repeat it instead of listening.
            previous_text: None,
        };
        Ok(clean_transcript(&self.transcriber.transcribe(request).await?.text))
    }
}

/// Whisper marks what it heard but is not speech as `[BLANK_AUDIO]`, `(music)` and the like; those are not
/// words someone said.
fn clean_transcript(text: &str) -> String {
    let mut cleaned = String::with_capacity(text.len());
    let mut depth = 0usize;
    for character in text.chars() {
        match character {
            '[' | '(' => depth += 1,
            ']' | ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => cleaned.push(character),
            _ => {}
        }
    }
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A file format someone sent instead of raw PCM, named.
fn container_problem(bytes: &[u8]) -> Option<String> {
    let named = |format: &str| {
        Some(format!("got {format}; send raw 16 kHz mono signed 16-bit little-endian PCM (or a WAV file of it)"))
    };
    match bytes {
        [b'I', b'D', b'3', ..] | [0xFF, 0xFB | 0xF3 | 0xF2, ..] => named("MP3 audio"),
        [b'O', b'g', b'g', b'S', ..] => named("Ogg audio"),
        [b'f', b'L', b'a', b'C', ..] => named("FLAC audio"),
        [0x1A, 0x45, 0xDF, 0xA3, ..] => named("WebM audio"),
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => named("MP4 audio"),
        _ => None,
    }
}

/// For a WAV file: where its samples start, once its header has arrived, if it is in the format we take.
fn wav_data_offset(bytes: &[u8]) -> Result<Option<usize>, VoiceError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Ok(None);
    }
    let mut offset = 12;
    let mut format_ok = false;
    while offset + 8 <= bytes.len() {
        let id = &bytes[offset..offset + 4];
        let size = u32::from_le_bytes([bytes[offset + 4], bytes[offset + 5], bytes[offset + 6], bytes[offset + 7]]);
        let body = offset + 8;
        if id == b"data" {
            if !format_ok {
                return Err(VoiceError::InvalidInput("a WAV file without a format chunk before its samples".into()));
            }
            return Ok(Some(body));
        }
        if id == b"fmt " {
            if bytes.len() < body + 16 {
                return Ok(None);
            }
            let field = |at: usize| u16::from_le_bytes([bytes[body + at], bytes[body + at + 1]]);
            let rate = u32::from_le_bytes([bytes[body + 4], bytes[body + 5], bytes[body + 6], bytes[body + 7]]);
            let (encoding, channels, bits) = (field(0), field(2), field(14));
            if encoding != 1 || channels != 1 || bits != 16 || rate != STT_SAMPLE_RATE {
                return Err(VoiceError::InvalidInput(format!(
                    "a WAV file of {rate} Hz, {channels} channel(s), {bits} bits (encoding {encoding}); \
                     send 16 kHz mono signed 16-bit PCM"
                )));
            }
            format_ok = true;
        }
        offset = body + size as usize + (size as usize & 1);
    }
    // The header is not all here yet: wait for more (the caller holds the bytes back).
    Ok(None)
}

/// Random bytes read as samples are loud everywhere and change sign about every other sample; speech,
/// even loud speech, is neither (its energy sits below 4 kHz).
fn sounds_like_random_bytes(bytes: &[u8]) -> bool {
    let samples: Vec<f32> =
        bytes.chunks_exact(2).map(|pair| f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0).collect();
    if samples.len() < 2 {
        return false;
    }
    let rms = (samples.iter().map(|sample| sample * sample).sum::<f32>() / samples.len() as f32).sqrt();
    let crossings = samples.windows(2).filter(|pair| (pair[0] >= 0.0) != (pair[1] >= 0.0)).count();
    let crossing_rate = crossings as f32 / (samples.len() - 1) as f32;
    rms > 0.2 && crossing_rate > 0.35
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::future::BoxFuture;

    use super::*;
    use crate::voice::{Transcriber, Transcript};

    /// Names each utterance by its length in tenths of a second, so tests can see what was cut where.
    #[derive(Default)]
    struct LengthTranscriber {
        calls: Mutex<Vec<usize>>,
    }

    impl Transcriber for LengthTranscriber {
        fn model_name(&self) -> &str {
            "length"
        }

        fn multilingual(&self) -> bool {
            false
        }

        fn prepare(&self) -> BoxFuture<'static, Result<(), VoiceError>> {
            Box::pin(async { Ok(()) })
        }

        fn transcribe(&self, request: TranscribeRequest) -> BoxFuture<'static, Result<Transcript, VoiceError>> {
            crate::sync::lock(&self.calls).push(request.samples.len());
            let text = format!("u{}", request.samples.len() / 1600);
            Box::pin(async move { Ok(Transcript { text }) })
        }
    }

    fn syllables(seconds: f32) -> Vec<i16> {
        (0..(seconds * 16_000.0) as usize)
            .map(|index| {
                let time = index as f32 / 16_000.0;
                let envelope = (time * 2.0 * std::f32::consts::PI * 4.0).sin().abs();
                ((time * 2.0 * std::f32::consts::PI * 220.0).sin() * envelope * 0.3 * 32767.0) as i16
            })
            .collect()
    }

    fn bytes(samples: &[i16]) -> Vec<u8> {
        crate::voice::pcm16_bytes(samples)
    }

    fn new_stream() -> (SpeechToTextStream, Arc<LengthTranscriber>) {
        let transcriber = Arc::new(LengthTranscriber::default());
        (SpeechToTextStream::new(transcriber.clone(), None), transcriber)
    }

    #[tokio::test]
    async fn utterances_join_into_one_cumulative_transcript() {
        let (mut stream, _) = new_stream();
        let mut audio = syllables(8.5);
        audio.extend(vec![0i16; 16_000]);
        audio.extend(syllables(1.0));
        let mut seen = Vec::new();
        for frame in bytes(&audio).chunks(8192) {
            if let Some(text) = stream.push(frame).await.expect("push") {
                seen.push(text);
            }
        }
        let last = stream.finish().await.expect("finish");
        let words: Vec<&str> = last.split(' ').collect();
        assert_eq!(words.len(), 2, "{last}");
        // Every update extends or revises only the end: the first utterance's text never changes.
        assert!(seen.iter().any(|text| text.starts_with(words[0])));
        assert_eq!(stream.utterances().iter().filter(|utterance| utterance.definite).count(), 2);
    }

    #[tokio::test]
    async fn odd_length_frames_lose_no_sample() {
        let (mut stream, transcriber) = new_stream();
        let audio = syllables(1.5);
        let encoded = bytes(&audio);
        for frame in encoded.chunks(1001) {
            stream.push(frame).await.expect("push");
        }
        stream.finish().await.expect("finish");
        let calls = crate::sync::lock(&transcriber.calls).clone();
        let last = calls.last().copied().unwrap_or(0);
        // The whole utterance (all of its 24 000 samples but the pre-roll-free start) reached the model.
        assert!(last >= 23_000, "{calls:?}");
    }

    #[tokio::test]
    async fn silence_transcribes_to_nothing_without_calling_the_model() {
        let (mut stream, transcriber) = new_stream();
        for frame in bytes(&vec![0i16; 80_000]).chunks(8192) {
            assert_eq!(stream.push(frame).await.expect("push"), None);
        }
        assert_eq!(stream.finish().await.expect("finish"), "");
        assert!(crate::sync::lock(&transcriber.calls).is_empty());
    }

    #[tokio::test]
    async fn compressed_audio_and_random_bytes_are_refused_with_a_reason() {
        let (mut stream, _) = new_stream();
        let error = stream.push(b"ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00rest").await.expect_err("mp3");
        assert!(error.to_string().contains("MP3"), "{error}");

        let (mut stream, _) = new_stream();
        let mut state = 0x1234_5678u32;
        let noise: Vec<u8> = (0..40_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let mut outcome = Ok(None);
        for frame in noise.chunks(8192) {
            outcome = stream.push(frame).await;
            if outcome.is_err() {
                break;
            }
        }
        let error = outcome.expect_err("noise");
        assert!(error.to_string().contains("random bytes"), "{error}");
    }

    #[tokio::test]
    async fn a_wav_header_of_the_right_format_is_skipped_and_others_are_refused() {
        let (mut stream, transcriber) = new_stream();
        let audio = syllables(1.5);
        let mut file = crate::voice::wav_header(16_000, Some((audio.len() * 2) as u32));
        file.extend(bytes(&audio));
        for frame in file.chunks(8192) {
            stream.push(frame).await.expect("push");
        }
        stream.finish().await.expect("finish");
        assert!(!crate::sync::lock(&transcriber.calls).is_empty());

        let (mut stream, _) = new_stream();
        let error = stream.push(&crate::voice::wav_header(44_100, None)).await.expect_err("44.1 kHz");
        assert!(error.to_string().contains("44100 Hz"), "{error}");
    }

    #[test]
    fn non_speech_marks_are_not_words() {
        assert_eq!(clean_transcript(" [BLANK_AUDIO] "), "");
        assert_eq!(clean_transcript(" Hello (music) there. "), "Hello there.");
    }
}
