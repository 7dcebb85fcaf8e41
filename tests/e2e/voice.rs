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
