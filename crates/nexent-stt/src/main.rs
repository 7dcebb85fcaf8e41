//! `nexent-stt`: whisper.cpp behind a pipe. `nexent` starts it on first use, sends it one utterance at a
//! time and reads the text back; it restarts it when it dies and it ends with its parent.
//!
//! whisper.cpp and llama.cpp each vendor their own ggml and cannot be linked into one binary (duplicate
//! symbols, and forcing the link aborts at run time), so speech-to-text lives in this process.
//!
//! Protocol (stdin → stdout), one request at a time:
//! - request: `u32` LE length + a JSON header ([`Request`]), then `u32` LE sample count + that many
//!   16 kHz mono signed 16-bit little-endian samples;
//! - reply: one line `NEXENT-STT {json}` ([`Reply`]); other lines on stdout, should whisper.cpp print any,
//!   are not replies. The first line, before any request, says the model is loaded (or why not).
//!
//! End of stdin ends the process.

use std::io::{BufWriter, Read, Write};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState};

/// Every reply line starts with this, so stray output on stdout cannot be taken for a reply.
const REPLY_PREFIX: &str = "NEXENT-STT ";
/// Ten minutes of audio; the server cuts speech into much shorter segments.
const MAX_SAMPLES: usize = 16_000 * 600;
const MAX_HEADER_BYTES: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Request {
    /// ISO 639-1 code, or none for the model's own: English for `.en` models, detection otherwise.
    language: Option<String>,
    /// Encoder frames to use (50 per second of audio, at most 1500). Short utterances need far fewer than
    /// the 30-second window, and the encoder's cost is proportional.
    audio_ctx: Option<i32>,
    /// Text the decoder sees as what came before (the previous segment), which keeps spelling consistent.
    initial_prompt: Option<String>,
}

#[derive(Debug, Serialize)]
struct Segment {
    start_ms: i64,
    end_ms: i64,
    text: String,
    no_speech_probability: f32,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Reply {
    Ready { ready: bool, model: String, multilingual: bool, threads: i32 },
    Text { text: String, segments: Vec<Segment>, elapsed_ms: u64 },
    Error { error: String },
}

struct Options {
    model: String,
    threads: i32,
}

fn parse_args() -> Result<Options, String> {
    let mut model = None;
    let mut threads = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = args.next(),
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|value| value.parse().ok())
                    .filter(|&value| value > 0)
                    .ok_or("--threads needs a positive number")?
            }
            "--help" | "-h" => return Err("usage: nexent-stt --model GGML_FILE [--threads N]".into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Options { model: model.ok_or("--model GGML_FILE is required")?, threads })
}

fn main() {
    // whisper.cpp's and ggml's log lines would otherwise go to stderr unasked; the hooks drop them.
    whisper_rs::install_logging_hooks();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("nexent-stt: {message}");
            std::process::exit(2);
        }
    };
    let context = match WhisperContext::new_with_params(&options.model, WhisperContextParameters::default()) {
        Ok(context) => context,
        Err(error) => {
            let _ = reply(&mut out, &Reply::Error { error: format!("cannot load {}: {error}", options.model) });
            std::process::exit(1);
        }
    };
    let multilingual = context.is_multilingual();
    let mut state = match context.create_state() {
        Ok(state) => state,
        Err(error) => {
            let _ = reply(&mut out, &Reply::Error { error: format!("cannot create the decoder state: {error}") });
            std::process::exit(1);
        }
    };
    let ready = Reply::Ready { ready: true, model: options.model.clone(), multilingual, threads: options.threads };
    if reply(&mut out, &ready).is_err() {
        return;
    }
    let mut input = std::io::stdin().lock();
    loop {
        let request = match read_request(&mut input) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(error) => {
                // The stream is out of step and cannot be resynchronised: say why and stop.
                let _ = reply(&mut out, &Reply::Error { error });
                std::process::exit(1);
            }
        };
        let (header, samples) = request;
        let answer = transcribe(&mut state, &header, &samples, options.threads, multilingual);
        if reply(&mut out, &answer).is_err() {
            return;
        }
    }
}

fn reply(out: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    let line = serde_json::to_string(reply).map_err(std::io::Error::other)?;
    writeln!(out, "{REPLY_PREFIX}{line}")?;
    out.flush()
}

fn read_u32(input: &mut impl Read) -> std::io::Result<Option<u32>> {
    let mut bytes = [0u8; 4];
    match input.read_exact(&mut bytes) {
        Ok(()) => Ok(Some(u32::from_le_bytes(bytes))),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(error) => Err(error),
    }
}

/// `Ok(None)` at a clean end of input.
fn read_request(input: &mut impl Read) -> Result<Option<(Request, Vec<f32>)>, String> {
    let Some(header_length) = read_u32(input).map_err(|error| error.to_string())? else { return Ok(None) };
    let header_length = header_length as usize;
    if header_length > MAX_HEADER_BYTES {
        return Err(format!("request header of {header_length} bytes is too large"));
    }
    let mut header = vec![0u8; header_length];
    input.read_exact(&mut header).map_err(|error| format!("truncated request header: {error}"))?;
    let header: Request =
        serde_json::from_slice(&header).map_err(|error| format!("request header is not valid JSON: {error}"))?;
    let samples = read_u32(input).map_err(|error| error.to_string())?.ok_or("request without audio")? as usize;
    if samples > MAX_SAMPLES {
        return Err(format!("{samples} samples is more than the {MAX_SAMPLES} allowed in one request"));
    }
    let mut bytes = vec![0u8; samples * 2];
    input.read_exact(&mut bytes).map_err(|error| format!("truncated audio: {error}"))?;
    let audio = bytes.chunks_exact(2).map(|pair| f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0).collect();
    Ok(Some((header, audio)))
}

fn transcribe(state: &mut WhisperState, header: &Request, audio: &[f32], threads: i32, multilingual: bool) -> Reply {
    let started = Instant::now();
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(threads);
    params.set_translate(false);
    params.set_no_context(true);
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    params.set_suppress_blank(true);
    params.set_suppress_nst(true);
    let language = match header.language.as_deref() {
        Some(language) if multilingual => language,
        _ if multilingual => "auto",
        _ => "en",
    };
    params.set_language(Some(language));
    if let Some(frames) = header.audio_ctx {
        params.set_audio_ctx(frames.clamp(64, 1500));
    }
    if let Some(prompt) = header.initial_prompt.as_deref().filter(|prompt| !prompt.is_empty()) {
        params.set_initial_prompt(prompt);
    }
    // whisper.cpp wants at least a second of audio; shorter utterances are padded with silence.
    let padded;
    let audio = if audio.len() < 16_000 {
        padded = [audio, &vec![0.0; 16_000 - audio.len()]].concat();
        &padded[..]
    } else {
        audio
    };
    if let Err(error) = state.full(params, audio) {
        return Reply::Error { error: format!("whisper failed: {error}") };
    }
    let segments: Vec<Segment> = state
        .as_iter()
        .map(|segment| Segment {
            // whisper.cpp's timestamps are in centiseconds.
            start_ms: segment.start_timestamp() * 10,
            end_ms: segment.end_timestamp() * 10,
            text: segment.to_str_lossy().map(|text| text.into_owned()).unwrap_or_default(),
            no_speech_probability: segment.no_speech_probability(),
        })
        .collect();
    let text = segments.iter().map(|segment| segment.text.as_str()).collect::<String>().trim().to_owned();
    Reply::Text { text, segments, elapsed_ms: started.elapsed().as_millis() as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(header: &str, samples: &[i16]) -> Vec<u8> {
        let mut bytes = (header.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&(samples.len() as u32).to_le_bytes());
        bytes.extend(samples.iter().flat_map(|sample| sample.to_le_bytes()));
        bytes
    }

    #[test]
    fn a_request_is_a_header_and_samples_and_the_end_of_input_is_clean() {
        let mut bytes = request(r#"{"language":"en","audio_ctx":400}"#, &[0, 16384, -32768]);
        bytes.extend(request("{}", &[]));
        let mut input = &bytes[..];
        let (header, audio) = read_request(&mut input).expect("valid").expect("a request");
        assert_eq!((header.language.as_deref(), header.audio_ctx), (Some("en"), Some(400)));
        assert_eq!(audio, vec![0.0, 0.5, -1.0]);
        let (_, audio) = read_request(&mut input).expect("valid").expect("a second request");
        assert!(audio.is_empty());
        assert!(read_request(&mut input).expect("clean end").is_none());
    }

    #[test]
    fn broken_requests_are_refused_with_a_reason() {
        let mut input = &request("not json", &[1])[..];
        assert!(read_request(&mut input).expect_err("bad header").contains("JSON"));
        let mut huge = (MAX_HEADER_BYTES as u32 + 1).to_le_bytes().to_vec();
        huge.extend(b"{}");
        assert!(read_request(&mut &huge[..]).expect_err("huge header").contains("too large"));
        let mut truncated = request("{}", &[1, 2, 3]);
        truncated.truncate(truncated.len() - 1);
        assert!(read_request(&mut &truncated[..]).expect_err("truncated").contains("truncated audio"));
        let mut too_long = request("{}", &[]);
        let at = too_long.len() - 4;
        too_long[at..].copy_from_slice(&(MAX_SAMPLES as u32 + 1).to_le_bytes());
        assert!(read_request(&mut &too_long[..]).expect_err("too long").contains("allowed"));
    }

    #[test]
    fn replies_are_single_prefixed_lines() {
        let mut out = Vec::new();
        reply(&mut out, &Reply::Error { error: "bad\nline".into() }).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with(REPLY_PREFIX) && text.ends_with('\n') && text.lines().count() == 1, "{text:?}");
    }
}
