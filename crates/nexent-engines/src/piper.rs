//! Text-to-speech with a Piper voice (VITS, ONNX) on ONNX Runtime, phonemes from espeak-ng.
//!
//! Per sentence: the `espeak-ng` program turns text into IPA phonemes (it prints one line per clause and
//! drops the punctuation, which is put back, because Piper voices pause and intonate on it); the voice's
//! `phoneme_id_map` turns phonemes into ids (`^`, each phoneme followed by the pad `_`, `$`); the model
//! turns ids into audio at the voice's rate, which is normalised, resampled when another rate is asked for,
//! and encoded (PCM, or MP3 through `lame`).
//!
//! espeak-ng is GPL-3.0: it runs as a separate program (Debian's `espeak-ng`) and is never linked, so the
//! `nexent` binary stays Apache-2.0. One engine thread owns the ONNX session, loaded on first use;
//! sentences wait on a bounded queue and a full queue answers "busy".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use futures::future::BoxFuture;
use nexent_core::voice::{AudioEncoding, Synthesizer, VoiceError};
use ort::session::Session;
use ort::value::Tensor;

use crate::audio::finish_sentence;

const QUEUE_DEPTH: usize = 16;

#[derive(Debug, Clone)]
pub struct PiperConfig {
    /// The voice's `.onnx`; its `.onnx.json` is beside it.
    pub model: PathBuf,
    /// `libonnxruntime.so.*`.
    pub runtime_library: PathBuf,
    /// The `espeak-ng` program.
    pub espeak: PathBuf,
    /// The `lame` program (MP3).
    pub lame: PathBuf,
    pub threads: usize,
}

impl PiperConfig {
    /// en_US-joe-medium from a models folder filled by `models/fetch.py tts`, with the Debian programs.
    pub fn joe(models_dir: &Path, threads: usize) -> Self {
        Self {
            model: models_dir.join("piper/en_US-joe-medium.onnx"),
            runtime_library: models_dir.join("onnxruntime/libonnxruntime.so.1.31.1"),
            espeak: PathBuf::from("espeak-ng"),
            lame: PathBuf::from("lame"),
            threads,
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct VoiceConfig {
    audio: AudioConfig,
    espeak: EspeakConfig,
    #[serde(default)]
    inference: InferenceConfig,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    num_speakers: u32,
}

#[derive(Debug, serde::Deserialize)]
struct AudioConfig {
    sample_rate: u32,
}

#[derive(Debug, serde::Deserialize)]
struct EspeakConfig {
    voice: String,
}

#[derive(Debug, serde::Deserialize)]
struct InferenceConfig {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self { noise_scale: 0.667, length_scale: 1.0, noise_w: 0.8 }
    }
}

struct Job {
    ids: Vec<i64>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<f32>, String>>,
}

#[derive(Clone)]
pub struct PiperSynthesizer {
    inner: Arc<Inner>,
}

struct Inner {
    voice_name: String,
    sample_rate: u32,
    espeak_voice: String,
    phoneme_ids: HashMap<char, Vec<i64>>,
    espeak: PathBuf,
    lame: PathBuf,
    jobs: SyncSender<Job>,
}

impl PiperSynthesizer {
    pub fn load(config: PiperConfig) -> Result<Self, VoiceError> {
        let unavailable = VoiceError::Unavailable;
        let json_path = PathBuf::from(format!("{}.json", config.model.display()));
        for path in [&config.model, &json_path, &config.runtime_library] {
            if !path.is_file() {
                return Err(unavailable(format!("the voice file {} is missing", path.display())));
            }
        }
        let text = std::fs::read_to_string(&json_path)
            .map_err(|error| unavailable(format!("cannot read {}: {error}", json_path.display())))?;
        let voice: VoiceConfig = serde_json::from_str(&text)
            .map_err(|error| unavailable(format!("{} is not a Piper voice config: {error}", json_path.display())))?;
        let mut phoneme_ids = HashMap::new();
        for (phoneme, ids) in &voice.phoneme_id_map {
            let mut characters = phoneme.chars();
            if let (Some(character), None) = (characters.next(), characters.next()) {
                phoneme_ids.insert(character, ids.clone());
            }
        }
        for required in ['^', '_', '$'] {
            if !phoneme_ids.contains_key(&required) {
                return Err(unavailable(format!("the voice has no id for {required:?}")));
            }
        }
        // The voice loads on first use, on its engine thread: start-up and idle memory stay as they were for
        // the many sessions that never speak.
        let scales = [voice.inference.noise_scale, voice.inference.length_scale, voice.inference.noise_w];
        let speakers = voice.num_speakers;
        let (model, runtime_library, threads) = (config.model.clone(), config.runtime_library.clone(), config.threads);
        let loader = move || -> Result<Engine, String> {
            let environment = crate::onnx_embedder::environment(&runtime_library).map_err(|error| error.to_string())?;
            let session = crate::onnx_embedder::build_session(environment, &model, threads)
                .map_err(|error| format!("cannot load the voice {}: {error}", model.display()))?;
            tracing::info!(voice = %model.display(), "text-to-speech voice loaded");
            Ok(Engine { session, scales, speakers })
        };
        let (jobs, receiver) = sync_channel::<Job>(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("nexent-tts".into())
            .spawn(move || run_engine(loader, receiver))
            .map_err(|error| unavailable(format!("cannot start the speech engine thread: {error}")))?;
        let voice_name =
            config.model.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_else(|| "piper".into());
        Ok(Self {
            inner: Arc::new(Inner {
                voice_name,
                sample_rate: voice.audio.sample_rate,
                espeak_voice: voice.espeak.voice,
                phoneme_ids,
                espeak: config.espeak,
                lame: config.lame,
                jobs,
            }),
        })
    }
}

struct Engine {
    session: Session,
    scales: [f32; 3],
    speakers: u32,
}

fn run_engine(loader: impl Fn() -> Result<Engine, String>, jobs: Receiver<Job>) {
    let mut engine: Option<Engine> = None;
    while let Ok(job) = jobs.recv() {
        if job.reply.is_closed() {
            continue;
        }
        if engine.is_none() {
            match loader() {
                Ok(loaded) => engine = Some(loaded),
                Err(error) => {
                    // Said to this caller; the next one tries again (a file may have been fetched meanwhile).
                    let _ = job.reply.send(Err(error));
                    continue;
                }
            }
        }
        if let Some(engine) = engine.as_mut() {
            let _ = job.reply.send(engine.infer(job.ids));
        }
    }
}

impl Engine {
    fn infer(&mut self, ids: Vec<i64>) -> Result<Vec<f32>, String> {
        let length = ids.len();
        let input = Tensor::<i64>::from_array(([1, length], ids)).map_err(|error| error.to_string())?;
        let lengths = Tensor::<i64>::from_array(([1], vec![length as i64])).map_err(|error| error.to_string())?;
        let scales = Tensor::<f32>::from_array(([3], self.scales.to_vec())).map_err(|error| error.to_string())?;
        let outputs = if self.speakers > 1 {
            let speaker = Tensor::<i64>::from_array(([1], vec![0i64])).map_err(|error| error.to_string())?;
            self.session
                .run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales, "sid" => speaker])
        } else {
            self.session.run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales])
        }
        .map_err(|error| error.to_string())?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(|error| error.to_string())?;
        Ok(audio.to_vec())
    }
}

impl Inner {
    async fn synthesize(&self, text: String, encoding: AudioEncoding, sample_rate: u32) -> Result<Vec<u8>, VoiceError> {
        let phonemes = self.phonemize(&text).await?;
        let ids = self.ids(&phonemes);
        if ids.len() <= 3 {
            return Ok(Vec::new());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs.try_send(Job { ids, reply }).map_err(|error| match error {
            TrySendError::Full(_) => VoiceError::Busy("text-to-speech"),
            TrySendError::Disconnected(_) => VoiceError::Failed("the speech engine stopped".into()),
        })?;
        let audio = answer
            .await
            .map_err(|_| VoiceError::Failed("the speech engine stopped".into()))?
            .map_err(|error| VoiceError::Failed(format!("speech synthesis failed: {error}")))?;
        finish_sentence(audio, self.sample_rate, sample_rate, encoding, &self.lame).await
    }

    /// IPA phonemes of `text` with its clause punctuation put back (`həlˈoʊ, wˈɜːld!`).
    async fn phonemize(&self, text: &str) -> Result<String, VoiceError> {
        let output =
            crate::espeak_voice::run_espeak(&self.espeak, &["-q", "--ipa", "-v", &self.espeak_voice], text).await?;
        let output = String::from_utf8_lossy(&output);
        Ok(with_punctuation(text, &output))
    }

    fn ids(&self, phonemes: &str) -> Vec<i64> {
        let id = |character: char| self.phoneme_ids.get(&character).cloned().unwrap_or_default();
        let pad = id('_');
        let mut ids = id('^');
        ids.extend(&pad);
        for character in phonemes.chars() {
            if let Some(own) = self.phoneme_ids.get(&character) {
                ids.extend(own);
                ids.extend(&pad);
            }
        }
        ids.extend(id('$'));
        ids
    }
}

/// espeak-ng prints one line per clause without its punctuation: the text's clause marks, in order, go
/// back after the lines (a comma where the counts disagree, the text's last mark at the end).
fn with_punctuation(text: &str, espeak_output: &str) -> String {
    let lines: Vec<&str> = espeak_output.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    let characters: Vec<char> = text.chars().collect();
    let marks: Vec<char> = characters
        .iter()
        .enumerate()
        .filter(|(index, character)| {
            matches!(character, ',' | ';' | ':' | '.' | '!' | '?')
                && characters.get(index + 1).is_none_or(|next| next.is_whitespace())
        })
        .map(|(_, &character)| character)
        .collect();
    let last_mark = text.trim_end().chars().last().filter(|character| matches!(character, '.' | '!' | '?'));
    let mut phonemes = String::new();
    for (index, line) in lines.iter().enumerate() {
        if !phonemes.is_empty() {
            phonemes.push(' ');
        }
        phonemes.push_str(line);
        let is_last = index + 1 == lines.len();
        let mark = if is_last {
            last_mark.or_else(|| (marks.len() == lines.len()).then(|| marks[index]))
        } else if marks.len() >= lines.len() - 1 {
            marks.get(index).copied()
        } else {
            Some(',')
        };
        phonemes.extend(mark);
    }
    phonemes
}

impl Synthesizer for PiperSynthesizer {
    fn voice_name(&self) -> &str {
        &self.inner.voice_name
    }

    fn native_sample_rate(&self) -> u32 {
        self.inner.sample_rate
    }

    fn synthesize(
        &self,
        text: String,
        encoding: AudioEncoding,
        sample_rate: u32,
    ) -> BoxFuture<'static, Result<Vec<u8>, VoiceError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.synthesize(text, encoding, sample_rate).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clause_punctuation_goes_back_after_espeaks_lines() {
        let output = "həlˈoʊ\nwˈɜːld\nðɪs ɪz ɐ tˈɛst\n";
        assert_eq!(with_punctuation("Hello, world! This is a test.", output), "həlˈoʊ, wˈɜːld! ðɪs ɪz ɐ tˈɛst.");
        // "Dr." splits a clause in espeak-ng but a count mismatch falls back to commas and the final mark.
        let output = "ʌv dˈɑːktɚ\nsmˈɪθz kˈæts\n";
        assert_eq!(with_punctuation("Of Dr. Smith's cats?", output), "ʌv dˈɑːktɚ. smˈɪθz kˈæts?");
        assert_eq!(with_punctuation("no mark", "nˈoʊ mˈɑːɹk\n"), "nˈoʊ mˈɑːɹk");
    }
}
