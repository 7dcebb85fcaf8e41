//! One text's speech as a stream of audio chunks (`/api/voice/tts/ws`): sentence by sentence, the next
//! sentence synthesised while the previous one is sent.

use futures::stream::{self, BoxStream, StreamExt};

use super::sentences::{speakable, split_sentences};
use super::{AudioEncoding, AudioFormat, SharedSynthesizer, VoiceError, wav_header};

/// Longest text one request may carry (about twenty minutes of speech).
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Sample rates a client may ask for.
pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8_000..=48_000;

#[derive(Debug, Clone)]
pub struct SpeechRequest {
    pub text: String,
    pub format: AudioFormat,
    /// None: the voice's own rate.
    pub sample_rate: Option<u32>,
}

/// Checks a request before any work: the message is the client's to read.
pub fn validate(request: &SpeechRequest) -> Result<(), VoiceError> {
    if request.text.trim().is_empty() {
        return Err(VoiceError::InvalidInput("No text provided".into()));
    }
    let characters = request.text.chars().count();
    if characters > MAX_TEXT_CHARS {
        return Err(VoiceError::InvalidInput(format!(
            "text of {characters} characters is longer than the {MAX_TEXT_CHARS} one request may carry; send it in parts"
        )));
    }
    if let Some(rate) = request.sample_rate.filter(|rate| !SAMPLE_RATES.contains(rate)) {
        return Err(VoiceError::InvalidInput(format!(
            "sample_rate {rate} is outside {}..={} Hz",
            SAMPLE_RATES.start(),
            SAMPLE_RATES.end()
        )));
    }
    Ok(())
}

/// The audio of `request`, one chunk per sentence (a WAV starts with its header). Validate first.
pub fn speak(
    synthesizer: SharedSynthesizer,
    request: SpeechRequest,
) -> BoxStream<'static, Result<Vec<u8>, VoiceError>> {
    let rate = request.sample_rate.unwrap_or_else(|| synthesizer.native_sample_rate());
    let encoding = match request.format {
        AudioFormat::Mp3 => AudioEncoding::Mp3,
        AudioFormat::Wav | AudioFormat::Pcm => AudioEncoding::Pcm16,
    };
    let sentences = split_sentences(&speakable(&request.text));
    let header = (request.format == AudioFormat::Wav).then(|| Ok(wav_header(rate, None)));
    let audio = stream::iter(sentences)
        .map(move |sentence| synthesizer.synthesize(sentence, encoding, rate))
        // Two at a time: the engine works on the next sentence while this one is on its way.
        .buffered(2);
    stream::iter(header).chain(audio).boxed()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::future::BoxFuture;

    use super::*;
    use crate::voice::Synthesizer;

    #[derive(Default)]
    struct EchoSynthesizer {
        sentences: Mutex<Vec<String>>,
    }

    impl Synthesizer for EchoSynthesizer {
        fn voice_name(&self) -> &str {
            "echo"
        }

        fn native_sample_rate(&self) -> u32 {
            22_050
        }

        fn synthesize(
            &self,
            text: String,
            _: AudioEncoding,
            rate: u32,
        ) -> BoxFuture<'static, Result<Vec<u8>, VoiceError>> {
            crate::sync::lock(&self.sentences).push(text.clone());
            Box::pin(async move { Ok(format!("{rate}:{text}").into_bytes()) })
        }
    }

    fn request(text: &str, format: AudioFormat, sample_rate: Option<u32>) -> SpeechRequest {
        SpeechRequest { text: text.into(), format, sample_rate }
    }

    #[tokio::test]
    async fn each_sentence_is_one_chunk_in_order_and_a_wav_starts_with_its_header() {
        let synthesizer = Arc::new(EchoSynthesizer::default());
        let chunks: Vec<Vec<u8>> =
            speak(synthesizer.clone(), request("One. Two [[a0]]! Three?", AudioFormat::Wav, Some(16_000)))
                .map(|chunk| chunk.expect("chunk"))
                .collect()
                .await;
        assert_eq!(chunks.len(), 4);
        assert_eq!(&chunks[0][..4], b"RIFF");
        assert_eq!(chunks[1], b"16000:One.");
        assert_eq!(chunks[2], b"16000:Two!");
        assert_eq!(chunks[3], b"16000:Three?");
        let mp3: Vec<Vec<u8>> = speak(synthesizer, request("Hi.", AudioFormat::Mp3, None))
            .map(|chunk| chunk.expect("chunk"))
            .collect()
            .await;
        assert_eq!(mp3, vec![b"22050:Hi.".to_vec()]);
    }

    #[test]
    fn empty_long_and_odd_rate_requests_are_refused() {
        assert_eq!(
            validate(&request("  ", AudioFormat::Mp3, None)),
            Err(VoiceError::InvalidInput("No text provided".into()))
        );
        let long = "a".repeat(MAX_TEXT_CHARS + 1);
        assert!(validate(&request(&long, AudioFormat::Mp3, None)).is_err());
        assert!(validate(&request("hi", AudioFormat::Pcm, Some(4_000))).is_err());
        assert!(validate(&request("hi", AudioFormat::Pcm, Some(16_000))).is_ok());
    }
}
