//! Text-to-speech for languages the Piper voice cannot speak, with espeak-ng's own voices: no Chinese
//! Piper voice exists in any registry, and espeak-ng (Debian's package, already needed for Piper's
//! phonemes) speaks Mandarin (`cmn`). Formant synthesis sounds robotic beside Piper, but it is offline,
//! fast (well under a tenth of real time) and understood, which speech-to-text checks in the tests.
//!
//! espeak-ng is GPL-3.0 and runs as a separate program, as for Piper: text goes in on stdin (so no text is
//! ever read as an option) and a WAV comes out on stdout, which is normalised, resampled and encoded
//! like Piper's audio.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::future::BoxFuture;
use nexent_core::voice::{AudioEncoding, Synthesizer, VoiceError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::audio::{finish_sentence, parse_wav_mono16};

/// espeak-ng's voices speak at 22,050 Hz.
const ESPEAK_SAMPLE_RATE: u32 = 22_050;
/// Most bytes of audio one sentence may produce (about 20 minutes at 22,050 Hz): a bound on a runaway.
const MAX_WAV_BYTES: u64 = 64 << 20;
/// Characters of one sentence that are spoken (the sentence splitter keeps sentences far shorter).
const MAX_SENTENCE_CHARS: usize = 2000;

#[derive(Debug, Clone)]
pub struct EspeakVoiceConfig {
    /// The voice's name in the model list.
    pub name: String,
    /// The `espeak-ng` program.
    pub espeak: PathBuf,
    /// espeak-ng's voice, e.g. `cmn-latn-pinyin` (Mandarin).
    pub voice: String,
    /// The `lame` program (MP3).
    pub lame: PathBuf,
}

impl EspeakVoiceConfig {
    /// Mandarin Chinese, with the Debian programs. espeak-ng's plain `cmn` voice turns characters into
    /// pinyin with tone digits and then reads those as English ("ni three hao three"); `cmn-latn-pinyin`
    /// reads the pinyin as Mandarin, with its tones.
    pub fn mandarin() -> Self {
        Self {
            name: "espeak-ng-cmn".into(),
            espeak: PathBuf::from("espeak-ng"),
            voice: "cmn-latn-pinyin".into(),
            lame: PathBuf::from("lame"),
        }
    }
}

pub struct EspeakVoice {
    name: String,
    config: EspeakVoiceConfig,
}

impl EspeakVoice {
    pub fn new(config: EspeakVoiceConfig) -> Self {
        Self { name: config.name.clone(), config }
    }
}

/// Runs the `espeak-ng` program on one sentence (on stdin, so no text is ever read as an option) and
/// returns what it printed, at most [`MAX_WAV_BYTES`]. Piper's phonemes and this voice's audio both come
/// through here.
pub(crate) async fn run_espeak(espeak: &Path, args: &[&str], text: &str) -> Result<Vec<u8>, VoiceError> {
    let mut child = tokio::process::Command::new(espeak)
        .args(args)
        .arg("--stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| {
            VoiceError::Unavailable(format!(
                "cannot start {} (install Debian's espeak-ng package): {error}",
                espeak.display()
            ))
        })?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(VoiceError::Failed("espeak-ng's pipes are missing".into()));
    };
    // One line: espeak-ng reads its input line by line, and a sentence must stay one utterance.
    let line: String = text.chars().take(MAX_SENTENCE_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    let writing = async move {
        stdin.write_all(line.as_bytes()).await?;
        stdin.write_all(b"\n").await?;
        stdin.shutdown().await
    };
    let mut output = Vec::new();
    let mut limited = stdout.take(MAX_WAV_BYTES);
    let reading = limited.read_to_end(&mut output);
    let (written, read) = tokio::join!(writing, reading);
    written.map_err(|error| VoiceError::Failed(format!("writing to espeak-ng: {error}")))?;
    read.map_err(|error| VoiceError::Failed(format!("reading espeak-ng's output: {error}")))?;
    let status = child.wait().await.map_err(|error| VoiceError::Failed(error.to_string()))?;
    if !status.success() {
        return Err(VoiceError::Failed(format!("espeak-ng failed ({status})")));
    }
    Ok(output)
}

/// The sentence as espeak-ng speaks it: samples and their rate.
async fn speak(config: EspeakVoiceConfig, text: String) -> Result<(Vec<f32>, u32), VoiceError> {
    let wav = run_espeak(&config.espeak, &["-v", &config.voice, "--stdout"], &text).await?;
    // The rate the file says, which finishing resamples from once (the constant is what the voice reports).
    let (samples, rate) = parse_wav_mono16(&wav).map_err(VoiceError::Failed)?;
    if rate == 0 {
        return Err(VoiceError::Failed("espeak-ng wrote audio at 0 Hz".into()));
    }
    Ok((samples, rate))
}

impl Synthesizer for EspeakVoice {
    fn voice_name(&self) -> &str {
        &self.name
    }

    fn native_sample_rate(&self) -> u32 {
        ESPEAK_SAMPLE_RATE
    }

    fn synthesize(
        &self,
        text: String,
        encoding: AudioEncoding,
        sample_rate: u32,
    ) -> BoxFuture<'static, Result<Vec<u8>, VoiceError>> {
        let config = self.config.clone();
        Box::pin(async move {
            if text.trim().is_empty() {
                return Ok(Vec::new());
            }
            let lame = config.lame.clone();
            let (audio, rate) = speak(config, text).await?;
            if audio.is_empty() {
                return Ok(Vec::new());
            }
            finish_sentence(audio, rate, sample_rate, encoding, &lame).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mandarin_is_spoken_as_pcm_at_the_rate_asked() {
        let voice = EspeakVoice::new(EspeakVoiceConfig::mandarin());
        assert_eq!(voice.voice_name(), "espeak-ng-cmn");
        let pcm = voice.synthesize("你好，世界。".into(), AudioEncoding::Pcm16, 16_000).await.expect("audio");
        // Over a quarter of a second of 16-bit audio at 16 kHz, and not silence.
        assert!(pcm.len() > 8_000, "{} bytes", pcm.len());
        assert!(pcm.chunks_exact(2).any(|pair| i16::from_le_bytes([pair[0], pair[1]]).abs() > 1000));
        // Text that looks like options is spoken, never obeyed; blank text is no audio.
        let hostile = voice.synthesize("--help -w /tmp/x".into(), AudioEncoding::Pcm16, 16_000).await.expect("audio");
        assert!(!hostile.is_empty());
        assert!(voice.synthesize("  ".into(), AudioEncoding::Pcm16, 16_000).await.expect("empty").is_empty());
    }

    #[test]
    fn wav_files_are_read_or_refused() {
        let mut wav = nexent_core::voice::wav_header(22_050, None);
        wav.extend(nexent_core::voice::pcm16_bytes(&[0, 16384, -32768]));
        let (samples, rate) = parse_wav_mono16(&wav).expect("wav");
        assert_eq!((samples, rate), (vec![0.0, 0.5, -1.0], 22_050));
        assert!(parse_wav_mono16(b"RIFF").is_err());
        assert!(parse_wav_mono16(&wav[..30]).is_err(), "a header cut short");
        assert!(parse_wav_mono16(b"not a wav at all, just text").is_err());
    }
}
