//! Voice App: local speech-to-text (whisper.cpp in the nexent-stt helper) and text-to-speech (Piper) over
//! the WebSockets of §7, driven as Nexent's frontend drives them and as the seed's document describes.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use nexent_e2e::{NexentServer, models_dir, wav_pcm, word_errors};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const JFK_TEXT: &str =
    "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";

/// 20 sentences with numbers, names and punctuation for the round trip.
const SENTENCES: [&str; 20] = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Doctor Smith at the clinic tomorrow morning.",
    "There are 24 hours in a day.",
    "My favorite colors are blue, green, and yellow.",
    "Can you send the report to Maria before Friday?",
    "The temperature dropped to 5 degrees last night.",
    "We planted 12 apple trees in the garden.",
    "Turn left at the second traffic light, then go straight.",
    "Alice and Bob shared a pizza with extra cheese.",
    "The library opens at nine and closes at six.",
    "Water boils at 100 degrees Celsius.",
    "Our flight to London was delayed by two hours.",
    "Please remember to bring your passport and tickets.",
    "The concert was loud, bright, and full of energy!",
    "How many people live in New York City?",
    "He scored 3 goals in the final match.",
    "The museum has paintings by Picasso and Monet.",
    "Save your work often, because computers can crash.",
    "The recipe needs two eggs, flour, and a cup of milk.",
    "Thank you for listening, and have a wonderful day.",
];

fn ws_url(server: &NexentServer, path: &str) -> String {
    server.url(path).replacen("http://", "ws://", 1)
}

async fn connect(server: &NexentServer, path: &str) -> anyhow::Result<Socket> {
    let (socket, _) = tokio_tungstenite::connect_async(ws_url(server, path)).await?;
    Ok(socket)
}

fn jfk_pcm() -> anyhow::Result<Vec<u8>> {
    wav_pcm(&std::fs::read(models_dir().join("jfk.wav"))?)
}

async fn next_json(socket: &mut Socket) -> anyhow::Result<Option<Value>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(120), socket.next()).await? {
            Some(Ok(Message::Text(text))) => return Ok(Some(serde_json::from_str(text.as_str())?)),
            Some(Ok(Message::Close(_))) | None => return Ok(None),
            Some(Ok(_)) => continue,
            Some(Err(error)) => anyhow::bail!("socket error: {error}"),
        }
    }
}

/// The seed's way: frames sent without waiting for "ready", then an empty frame; every message until the
/// server closes. Returns the final text and all messages.
async fn transcribe(server: &NexentServer, pcm: &[u8], frame: usize) -> anyhow::Result<(String, Vec<Value>)> {
    let mut socket = connect(server, "/api/voice/stt/ws").await?;
    let (mut sender, mut receiver) = socket.split();
    let frames: Vec<Vec<u8>> = pcm.chunks(frame).map(<[u8]>::to_vec).collect();
    let writer = tokio::spawn(async move {
        for frame in frames {
            sender.send(Message::Binary(frame.into())).await?;
        }
        sender.send(Message::Binary(Vec::new().into())).await?;
        anyhow::Ok(sender)
    });
    let mut messages = Vec::new();
    while let Some(message) = tokio::time::timeout(Duration::from_secs(120), receiver.next()).await? {
        match message? {
            Message::Text(text) => messages.push(serde_json::from_str::<Value>(text.as_str())?),
            Message::Close(_) => break,
            _ => {}
        }
    }
    let sender = writer.await??;
    socket = sender.reunite(receiver).map_err(|_| anyhow::anyhow!("reunite"))?;
    drop(socket);
    anyhow::ensure!(messages.first() == Some(&json!({"status": "ready"})), "ready comes first: {messages:?}");
    let last = messages.last().cloned().unwrap_or_default();
    anyhow::ensure!(last["is_final"] == true, "the last message is the final text: {last}");
    Ok((last["result"]["text"].as_str().unwrap_or_default().to_owned(), messages))
}

/// One text on an open text-to-speech socket: the audio chunks until `completed`.
async fn speak_on(socket: &mut Socket, request: Value) -> anyhow::Result<Vec<Vec<u8>>> {
    socket.send(Message::Text(request.to_string().into())).await?;
    let mut chunks = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(120), socket.next()).await? {
            Some(Ok(Message::Binary(bytes))) => chunks.push(bytes.to_vec()),
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(text.as_str())?;
                anyhow::ensure!(message == json!({"status": "completed"}), "unexpected message {message}");
                return Ok(chunks);
            }
            Some(Ok(_)) => {}
            other => anyhow::bail!("the socket ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn jfk_transcribes_to_its_known_text_through_the_seeds_protocol() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let (text, messages) = transcribe(&server, &jfk_pcm()?, 8192).await?;
    let (errors, words) = word_errors(JFK_TEXT, &text);
    assert_eq!(errors, 0, "{words} words, {errors} errors: {text:?}");
    // One answer per frame: transcripts or "processing", each carrying the cumulative text.
    for message in &messages[1..] {
        assert!(message.get("result").is_some() || message == &json!({"status": "processing"}), "{message}");
    }
    Ok(())
}

#[tokio::test]
async fn the_frontends_way_streams_cumulative_partials_and_stops_by_closing() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let pcm = jfk_pcm()?;
    let socket = connect(&server, "/api/voice/stt/ws").await?;
    let (mut sender, mut receiver) = socket.split();
    // 8192-byte frames from the moment the socket opens, at four times real time (a frame is 256 ms).
    let writer = tokio::spawn(async move {
        for frame in pcm.chunks(8192) {
            sender.send(Message::Binary(frame.to_vec().into())).await?;
            tokio::time::sleep(Duration::from_millis(64)).await;
        }
        anyhow::Ok(sender)
    });
    let mut texts: Vec<String> = Vec::new();
    let mut frames_answered = 0;
    while frames_answered < 43 {
        let Some(message) = tokio::time::timeout(Duration::from_secs(60), receiver.next()).await? else { break };
        let Message::Text(text) = message? else { continue };
        let message: Value = serde_json::from_str(text.as_str())?;
        if message.get("status").is_some() && message["status"] != "processing" {
            continue;
        }
        frames_answered += 1;
        if let Some(text) = message["result"]["text"].as_str() {
            texts.push(text.to_owned());
        }
    }
    let mut sender = writer.await??;
    // The frontend stops by closing the socket.
    sender.close().await?;
    assert!(texts.len() >= 2, "partial transcripts while speaking: {texts:?}");
    let last = texts.last().cloned().unwrap_or_default();
    assert!(last.to_lowercase().contains("fellow americans"), "{texts:?}");
    // Cumulative: each transcript carries the earlier words.
    let first_words: Vec<String> = nexent_e2e::normalized_words(&texts[0]).into_iter().take(2).collect();
    assert!(texts.iter().all(|text| nexent_e2e::normalized_words(text).starts_with(&first_words)), "{texts:?}");
    // The server is still well after the client went away.
    let (status, _) = server.get_json("/api/health").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn spoken_sentences_come_back_as_the_same_words() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let mut tts = connect(&server, "/api/voice/tts/ws").await?;
    let (mut errors, mut words) = (0, 0);
    let mut report = Vec::new();
    for sentence in SENTENCES {
        let chunks = speak_on(&mut tts, json!({"text": sentence, "format": "pcm", "sample_rate": 16000})).await?;
        let pcm: Vec<u8> = chunks.concat();
        assert!(pcm.len() > 16_000, "at least half a second of speech for {sentence:?}");
        let (heard, _) = transcribe(&server, &pcm, 8192).await?;
        let (sentence_errors, sentence_words) = word_errors(sentence, &heard);
        errors += sentence_errors;
        words += sentence_words;
        report.push(format!("{sentence_errors}/{sentence_words} {sentence:?} -> {heard:?}"));
    }
    let rate = errors as f64 / words as f64;
    println!("word error rate {:.1}% ({errors}/{words})\n{}", rate * 100.0, report.join("\n"));
    assert!(rate <= 0.10, "word error rate {:.1}%:\n{}", rate * 100.0, report.join("\n"));
    Ok(())
}

#[tokio::test]
async fn odd_length_frames_and_silence_and_a_huge_frame_and_noise_each_get_a_clear_answer() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    // A sample split across frames is joined again: the transcript is the same.
    let (text, _) = transcribe(&server, &jfk_pcm()?, 8191).await?;
    assert_eq!(word_errors(JFK_TEXT, &text).0, 0, "{text:?}");

    // Silence only: no words (whisper is never asked to invent some).
    let (text, messages) = transcribe(&server, &vec![0u8; 16_000 * 2 * 5], 8192).await?;
    assert_eq!(text, "");
    assert!(messages.iter().all(|message| message["result"]["text"].as_str().unwrap_or("").is_empty()));

    // A 10 MB frame: refused by name, and the socket goes on.
    let mut socket = connect(&server, "/api/voice/stt/ws").await?;
    assert_eq!(next_json(&mut socket).await?, Some(json!({"status": "ready"})));
    socket.send(Message::Binary(vec![0u8; 10 * 1024 * 1024].into())).await?;
    let refused = next_json(&mut socket).await?.unwrap_or_default();
    assert!(refused["error"].as_str().unwrap_or("").contains("larger than"), "{refused}");
    socket.send(Message::Binary(Vec::new().into())).await?;
    let last = next_json(&mut socket).await?.unwrap_or_default();
    assert_eq!((last["is_final"].as_bool(), last["result"]["text"].as_str()), (Some(true), Some("")), "{last}");

    // Random bytes and an MP3 file are not PCM speech: an error that says so, then the socket closes.
    let mut state = 0x2545_f491u32;
    let noise: Vec<u8> = (0..64_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let mut socket = connect(&server, "/api/voice/stt/ws").await?;
    for frame in noise.chunks(8192) {
        socket.send(Message::Binary(frame.to_vec().into())).await?;
    }
    let mut answers = Vec::new();
    while let Some(message) = next_json(&mut socket).await? {
        answers.push(message);
    }
    let error = answers.iter().find_map(|message| message["error"].as_str()).unwrap_or_default();
    assert!(error.contains("does not sound like speech"), "{answers:?}");
    let mut socket = connect(&server, "/api/voice/stt/ws").await?;
    socket.send(Message::Binary(b"ID3\x04\x00\x00\x00\x00\x00\x00rest of an mp3".to_vec().into())).await?;
    let mut answers = Vec::new();
    while let Some(message) = next_json(&mut socket).await? {
        answers.push(message);
    }
    assert!(answers.iter().any(|message| message["error"].as_str().unwrap_or("").contains("MP3")), "{answers:?}");

    // Options as a first text frame; an unknown model is named.
    let mut socket = connect(&server, "/api/voice/stt/ws").await?;
    assert_eq!(next_json(&mut socket).await?, Some(json!({"status": "ready"})));
    socket.send(Message::Text(json!({"model": "large-v9"}).to_string().into())).await?;
    let unknown = next_json(&mut socket).await?.unwrap_or_default();
    assert!(unknown["error"].as_str().unwrap_or("").contains("large-v9"), "{unknown}");
    // Chinese asked of the English-only model: said, not transcribed into English words.
    let mut socket = connect(&server, "/api/voice/stt/ws?language=zh&model=tiny.en").await?;
    let refused = next_json(&mut socket).await?.unwrap_or_default();
    assert!(refused["error"].as_str().unwrap_or("").contains("English only"), "{refused}");
    let (status, _) = server.get_json("/api/health").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn the_helper_is_restarted_when_it_dies() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let pcm = jfk_pcm()?;
    transcribe(&server, &pcm, 8192).await?;
    let server_pid = server.pid().unwrap_or_default();
    let helpers = helper_pids(server_pid);
    assert_eq!(helpers.len(), 1, "one helper runs: {helpers:?}");
    // As a crash would.
    let status = std::process::Command::new("kill").arg("-9").arg(helpers[0].to_string()).status()?;
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (text, _) = transcribe(&server, &pcm, 8192).await?;
    assert_eq!(word_errors(JFK_TEXT, &text).0, 0, "{text:?}");
    let again = helper_pids(server_pid);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again[0], helpers[0]);
    Ok(())
}

/// Children of `parent` running nexent-stt.
fn helper_pids(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...
        let Some(after_comm) = stat.rsplit_once(") ").map(|(_, rest)| rest) else { continue };
        let ppid: u32 = after_comm.split(' ').nth(1).and_then(|field| field.parse().ok()).unwrap_or(0);
        if ppid == parent && stat.contains("(nexent-stt)") {
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test]
async fn text_to_speech_streams_mp3_by_default_and_takes_one_text_after_another() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let mut socket = connect(&server, "/api/voice/tts/ws").await?;
    // Nexent's client: `{"text"}` only; MP3 chunks, one per sentence, then completed.
    let chunks = speak_on(&mut socket, json!({"text": "Hello there. This is your local assistant speaking."})).await?;
    assert_eq!(chunks.len(), 2, "one chunk per sentence");
    for chunk in &chunks {
        let frame_sync = chunk.len() > 2 && chunk[0] == 0xFF && chunk[1] & 0xE0 == 0xE0;
        assert!(frame_sync || chunk.starts_with(b"ID3"), "an MP3 stream: {:?}", &chunk[..4.min(chunk.len())]);
    }
    // WAV on request, at another rate: a header first, then PCM.
    let wav = speak_on(&mut socket, json!({"text": "One more.", "format": "wav", "sample_rate": 24000})).await?;
    assert!(wav[0].starts_with(b"RIFF"));
    assert_eq!(u32::from_le_bytes([wav[0][24], wav[0][25], wav[0][26], wav[0][27]]), 24_000);
    assert!(wav[1].len() > 24_000, "half a second of 24 kHz audio at least");

    // Empty text: the error Nexent sends, and the socket stays usable.
    socket.send(Message::Text(json!({"text": ""}).to_string().into())).await?;
    assert_eq!(next_json(&mut socket).await?, Some(json!({"error": "No text provided"})));
    // 100 kB of text: refused by name, socket usable.
    socket.send(Message::Text(json!({"text": "word ".repeat(20_000)}).to_string().into())).await?;
    let refused = next_json(&mut socket).await?.unwrap_or_default();
    assert!(refused["error"].as_str().unwrap_or("").contains("longer than"), "{refused}");
    socket.send(Message::Text("not json".into())).await?;
    let refused = next_json(&mut socket).await?.unwrap_or_default();
    assert!(refused["error"].as_str().unwrap_or("").contains("JSON"), "{refused}");

    // Two texts in flight on one socket: both are spoken, in order, each ending with completed.
    socket.send(Message::Text(json!({"text": "First request.", "format": "pcm"}).to_string().into())).await?;
    socket
        .send(Message::Text(json!({"text": "Second request, a little longer.", "format": "pcm"}).to_string().into()))
        .await?;
    let mut sizes = vec![0usize];
    let mut completed = 0;
    while completed < 2 {
        match tokio::time::timeout(Duration::from_secs(120), socket.next()).await? {
            Some(Ok(Message::Binary(bytes))) => {
                if let Some(last) = sizes.last_mut() {
                    *last += bytes.len();
                }
            }
            Some(Ok(Message::Text(text))) => {
                assert_eq!(serde_json::from_str::<Value>(text.as_str())?, json!({"status": "completed"}));
                completed += 1;
                sizes.push(0);
            }
            other => anyhow::bail!("socket ended: {other:?}"),
        }
    }
    assert!(sizes[0] > 0 && sizes[1] > sizes[0], "the longer text is second: {sizes:?}");
    Ok(())
}

#[tokio::test]
async fn connectivity_and_health_checks_use_the_local_engines() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    for kind in ["stt", "tts"] {
        let (status, body) = server.post_json("/api/voice/connectivity", &json!({"model_type": kind})).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["connected"].as_bool(), body["model_type"].as_str()), (Some(true), Some(kind)), "{body}");
    }
    let (status, body) = server.post_json("/api/voice/connectivity", &json!({"model_type": "vlm"})).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("stt or tts"), "{body}");
    // Model Management lists the local speech models as it lists the GGUF files, and checks them.
    let (_, listed) = server.get_json("/api/model/list").await?;
    for (name, kind) in [("tiny.en", "stt"), ("en_US-joe-medium", "tts"), ("espeak-ng-cmn", "tts")] {
        let record =
            listed["data"].as_array().and_then(|records| records.iter().find(|record| record["model_name"] == name));
        let record = record.unwrap_or_else(|| panic!("{name} is listed: {listed}"));
        if kind == "tts" {
            // Which language each voice speaks is in its display name.
            let display = record["display_name"].as_str().unwrap_or_default();
            let language = if name.starts_with("espeak") { "Chinese" } else { "English" };
            assert!(display.contains(language), "{record}");
        }
        assert_eq!((record["model_type"].as_str(), record["model_factory"].as_str()), (Some(kind), Some("local")));
        let (_, health) = server.get_json(&format!("/api/model/healthcheck?model_name={name}")).await?;
        assert_eq!(health["data"]["connectivity"], true, "{health}");
    }
    Ok(())
}
