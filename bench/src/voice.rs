//! Voice benchmark: speech-to-text real-time factor and the latency from the end of speech to the final
//! text, text-to-speech real-time factor and time to the first audio chunk; ours beside faster-whisper and
//! piper-tts (from PyPI) on the same model files, audio and cores, in one run.
//!
//! `NEXENT_BIN=target/release/nexent cargo run --release -p nexent-bench --bin bench-voice -- --models models/files --peer-python PY --out FILE`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use nexent_bench::{argument, median};
use nexent_core::voice::{TranscribeRequest, Transcriber};
use nexent_e2e::{NexentServer, ServerOptions, wav_pcm, word_errors};
use nexent_engines::whisper_sidecar::{WhisperSidecar, WhisperSidecarConfig};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const RUNS: usize = 3;
const JFK_TEXT: &str =
    "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
/// Spoken by our voice at 16 kHz and joined with pauses into a longer clip.
const STORY: [&str; 6] = [
    "The harbor was quiet when the ferry from Bergen arrived at seven in the morning.",
    "Anna carried two suitcases and a map of the old town.",
    "She asked a fisherman where the library was, and he pointed up the hill.",
    "The building had twelve windows facing the sea.",
    "Inside, a librarian named Peter was sorting letters from 1920.",
    "By noon, Anna had found the photograph she came for.",
];
const TTS_TEXTS: [&str; 4] = [
    "Hello! Your documents are indexed and ready to search.",
    "The meeting moved to Thursday at three. Please bring the quarterly report, and tell Maria about the new room.",
    "Local speech synthesis keeps your answers private. Nothing leaves this machine, and it works offline.",
    "Paris is the capital of France. It has about two million inhabitants. The Seine flows through the city.",
];

struct Clip {
    name: &'static str,
    text: String,
    pcm: Vec<u8>,
}

impl Clip {
    fn seconds(&self) -> f64 {
        self.pcm.len() as f64 / 2.0 / 16_000.0
    }

    fn samples(&self) -> Vec<i16> {
        self.pcm.chunks_exact(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect()
    }
}

async fn connect(server: &NexentServer, path: &str) -> anyhow::Result<Socket> {
    let url = server.url(path).replacen("http://", "ws://", 1);
    Ok(tokio_tungstenite::connect_async(url).await?.0)
}

/// Audio chunks of one text, and when the first arrived.
async fn speak(socket: &mut Socket, request: Value) -> anyhow::Result<(Vec<u8>, Duration, Duration)> {
    let started = Instant::now();
    socket.send(Message::Text(request.to_string().into())).await?;
    let mut audio = Vec::new();
    let mut first = None;
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(bytes))) => {
                first.get_or_insert_with(|| started.elapsed());
                audio.extend_from_slice(&bytes);
            }
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(text.as_str())?;
                anyhow::ensure!(message["status"] == "completed", "{message}");
                return Ok((audio, first.unwrap_or_default(), started.elapsed()));
            }
            Some(Ok(_)) => {}
            other => anyhow::bail!("the socket ended: {other:?}"),
        }
    }
}

/// Streams `pcm` in 8192-byte frames (`pace` between frames), then the empty end frame. Returns the final
/// text, the time from the end frame to the final text, and the whole session's time.
async fn stream(server: &NexentServer, pcm: &[u8], pace: Duration) -> anyhow::Result<(String, Duration, Duration)> {
    let socket = connect(server, "/api/voice/stt/ws").await?;
    let (mut sender, mut receiver) = socket.split();
    let started = Instant::now();
    let frames: Vec<Vec<u8>> = pcm.chunks(8192).map(<[u8]>::to_vec).collect();
    let writer = tokio::spawn(async move {
        let mut next = Instant::now();
        for frame in frames {
            sender.send(Message::Binary(frame.into())).await?;
            next += pace;
            tokio::time::sleep_until(next.into()).await;
        }
        sender.send(Message::Binary(Vec::new().into())).await?;
        anyhow::Ok((Instant::now(), sender))
    });
    let mut last = Value::Null;
    while let Some(message) = receiver.next().await {
        if let Message::Text(text) = message? {
            last = serde_json::from_str(text.as_str())?;
            if last["is_final"] == true {
                break;
            }
        }
    }
    let finished = Instant::now();
    let (ended, _sender) = writer.await??;
    anyhow::ensure!(last["is_final"] == true, "no final text: {last}");
    let text = last["result"]["text"].as_str().unwrap_or_default().to_owned();
    Ok((text, finished.saturating_duration_since(ended), finished - started))
}

fn write_wav(path: &Path, pcm: &[u8]) -> anyhow::Result<()> {
    let mut file = nexent_core::voice::wav_header(16_000, Some(pcm.len() as u32));
    file.extend_from_slice(pcm);
    std::fs::write(path, file)?;
    Ok(())
}

fn wer(reference: &str, hypothesis: &str) -> String {
    let (errors, words) = word_errors(reference, hypothesis);
    format!("{:.1}%", 100.0 * errors as f64 / words.max(1) as f64)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let models = PathBuf::from(argument(&arguments, "--models").unwrap_or_else(|| "models/files".into()));
    let python =
        argument(&arguments, "--peer-python").context("--peer-python PY (with faster-whisper and piper-tts)")?;
    let out = argument(&arguments, "--out");
    let cores = nexent_bench::cores();
    let server = NexentServer::start_with(ServerOptions::default().arg("--voice-threads").arg(cores.to_string()))?;
    let work = tempfile::tempdir()?;

    // The clips: jfk.wav, and a story our voice reads at 16 kHz with pauses between sentences.
    let mut tts = connect(&server, "/api/voice/tts/ws").await?;
    let mut story = Vec::new();
    for sentence in STORY {
        let (pcm, _, _) = speak(&mut tts, json!({"text": sentence, "format": "pcm", "sample_rate": 16000})).await?;
        story.extend(pcm);
        story.extend(vec![0u8; 16_000 * 2 * 4 / 10]);
    }
    let clips = vec![
        Clip { name: "jfk.wav", text: JFK_TEXT.into(), pcm: wav_pcm(&std::fs::read(models.join("jfk.wav"))?)? },
        Clip { name: "story (our voice)", text: STORY.join(" "), pcm: story },
    ];
    for (index, clip) in clips.iter().enumerate() {
        write_wav(&work.path().join(format!("clip{index}.wav")), &clip.pcm)?;
    }

    // Ours, engine alone: the helper transcribes each clip whole.
    let helper = nexent_e2e::nexent_binary()?.with_file_name("nexent-stt");
    let model = models.join("ggml-tiny.en.bin");
    let engine = WhisperSidecar::new(WhisperSidecarConfig {
        helper,
        model_name: WhisperSidecarConfig::model_name_of(&model),
        model,
        threads: cores,
    })?;
    engine.prepare().await?;
    let mut stt_rows = Vec::new();
    for clip in &clips {
        let request = TranscribeRequest { samples: clip.samples(), ..Default::default() };
        engine.transcribe(request.clone()).await?;
        let mut times = Vec::new();
        let mut text = String::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            text = engine.transcribe(request.clone()).await?.text;
            times.push(started.elapsed().as_secs_f64());
        }
        let engine_seconds = times.iter().copied().fold(f64::INFINITY, f64::min);
        // Through the socket as fast as it takes frames (partials included), and in real time.
        let (_, _, session) = stream(&server, &clip.pcm, Duration::ZERO).await?;
        let mut after_speech = Vec::new();
        let mut streamed_text = String::new();
        for _ in 0..2 {
            let (heard, latency, _) = stream(&server, &clip.pcm, Duration::from_millis(256)).await?;
            after_speech.push(latency.as_secs_f64());
            streamed_text = heard;
        }
        eprintln!(
            "{}: engine {engine_seconds:.3} s, session {:.3} s, after speech {after_speech:?}",
            clip.name,
            session.as_secs_f64()
        );
        stt_rows.push((engine_seconds, text, session.as_secs_f64(), median(after_speech), streamed_text));
    }

    // Ours, text-to-speech through the socket.
    let mut tts_rows = Vec::new();
    for text in TTS_TEXTS {
        speak(&mut tts, json!({"text": text, "format": "pcm"})).await?;
        let (mut totals, mut firsts, mut mp3_firsts) = (Vec::new(), Vec::new(), Vec::new());
        let mut audio_seconds = 0.0;
        for _ in 0..RUNS {
            let (pcm, first, total) = speak(&mut tts, json!({"text": text, "format": "pcm"})).await?;
            audio_seconds = pcm.len() as f64 / 2.0 / 22_050.0;
            totals.push(total.as_secs_f64());
            firsts.push(first.as_secs_f64());
            let (_, mp3_first, _) = speak(&mut tts, json!({"text": text})).await?;
            mp3_firsts.push(mp3_first.as_secs_f64());
        }
        tts_rows.push((audio_seconds, median(totals), median(firsts), median(mp3_firsts)));
    }
    drop(tts);
    drop(server);

    // The references, on the same audio and voice, after ours (they never share the cores).
    let spec = json!({
        "ct2_model": models.join("whisper-tiny.en-ct2"),
        "threads": cores,
        "runs": RUNS,
        "stt": clips.iter().enumerate().map(|(index, clip)| json!({
            "name": clip.name, "wav": work.path().join(format!("clip{index}.wav")), "seconds": clip.seconds()
        })).collect::<Vec<_>>(),
        "voice": models.join("piper/en_US-joe-medium.onnx"),
        "tts": TTS_TEXTS,
    });
    let spec_path = work.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string())?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/voice_reference.py");
    let output = std::process::Command::new(&python).arg(&script).arg(&spec_path).output()?;
    anyhow::ensure!(output.status.success(), "reference failed: {}", String::from_utf8_lossy(&output.stderr));
    let reference: Value = serde_json::from_slice(&output.stdout)?;

    let mut report = format!(
        "# Voice benchmark\n\nMachine: {cores} cores; both engines get all of them. Produced by `make bench-voice` \
         (bench/src/voice.rs, bench/peers/voice_reference.py). Ours: whisper.cpp 1.8.3 (tiny.en, ggml f16 converted \
         from the CTranslate2 model) in the nexent-stt helper, greedy, encoder window sized to the audio; Piper \
         en_US-joe-medium on ONNX Runtime 1.31.1 with espeak-ng phonemes. References in the same run: faster-whisper \
         (CTranslate2, the same tiny.en model, int8, greedy) and piper-tts (the same voice). Best of {RUNS} after a \
         warm-up for real-time factors; medians for latencies. Goals: STT RTF ≤ 0.1 and final text ≤ 1 s after the \
         end of speech; TTS RTF ≤ 0.1 and first audio ≤ 300 ms.\n\n\
         ## Speech-to-text\n\n\
         \"after speech\": the clip streamed through `/api/voice/stt/ws` in real time (8192-byte frames every 256 ms), \
         then the empty end frame; time from that frame to the final text. \"session\": the clip sent as fast as the \
         socket takes it, partial transcripts included. faster-whisper's figure for the same is its transcription of \
         the whole clip once speech has ended.\n\n\
         | clip | audio s | ours RTF (engine) | ours WER | ours session RTF | ours final text after speech ms | faster-whisper RTF | faster-whisper WER | faster-whisper whole clip ms |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    for (index, (clip, (engine_seconds, text, session, after, streamed))) in clips.iter().zip(&stt_rows).enumerate() {
        let peer = &reference["stt"][index];
        let peer_seconds = peer["elapsed"].as_f64().unwrap_or(f64::NAN);
        report.push_str(&format!(
            "| {} | {:.1} | {:.3} | {} (streamed: {}) | {:.3} | {:.0} | {:.3} | {} | {:.0} |\n",
            clip.name,
            clip.seconds(),
            engine_seconds / clip.seconds(),
            wer(&clip.text, text),
            wer(&clip.text, streamed),
            session / clip.seconds(),
            after * 1000.0,
            peer_seconds / clip.seconds(),
            wer(&clip.text, peer["text"].as_str().unwrap_or_default()),
            peer_seconds * 1000.0,
        ));
    }
    report.push_str(
        "\n## Text-to-speech\n\n\"first audio\": from sending `{\"text\"}` on `/api/voice/tts/ws` to the first binary \
         chunk (PCM, and MP3, the default format, which adds the lame encoder). piper-tts: its first sentence's audio \
         from `PiperVoice.synthesize`.\n\n\
         | text | audio s | ours RTF | ours first audio ms (PCM) | ours first audio ms (MP3) | piper-tts RTF | piper-tts first audio ms |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (index, (text, (audio_seconds, total, first, mp3_first))) in TTS_TEXTS.iter().zip(&tts_rows).enumerate() {
        let peer = &reference["tts"][index];
        let peer_audio = peer["audio_seconds"].as_f64().unwrap_or(f64::NAN);
        report.push_str(&format!(
            "| {}… | {audio_seconds:.1} | {:.3} | {:.0} | {:.0} | {:.3} | {:.0} |\n",
            text.chars().take(32).collect::<String>(),
            total / audio_seconds,
            first * 1000.0,
            mp3_first * 1000.0,
            peer["elapsed"].as_f64().unwrap_or(f64::NAN) / peer_audio,
            peer["first_chunk"].as_f64().unwrap_or(f64::NAN) * 1000.0,
        ));
    }
    print!("{report}");
    if let Some(out) = out {
        std::fs::write(&out, &report)?;
        eprintln!("wrote {out}");
    }
    Ok(())
}
