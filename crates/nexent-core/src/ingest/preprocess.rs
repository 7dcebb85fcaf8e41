//! Preprocessing chat attachments (Nexent's `/api/file/preprocess`): each file's real extracted text becomes
//! its description, which the agent folds into the question. Images are described by a vision model when one
//! is configured (`VLM_MODEL_URL`, OpenAI-compatible), and otherwise fail with a message that says so.

use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::parse::{self, ParseError};

/// Most characters of extracted text one description carries; the agent's prompt has to hold it.
pub const MAX_DESCRIPTION_CHARS: usize = 6000;

const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "gif", "bmp", "webp"];

pub struct Attachment {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// An OpenAI-compatible vision model (Nexent's `VLM_MODEL_*` keys).
#[derive(Debug, Clone)]
pub struct VisionModel {
    pub url: String,
    pub model_name: String,
    pub api_key: Option<String>,
}

/// One message of §6.5's stream, serialised with Nexent's field names.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PreprocessEvent {
    Progress { progress: u8, message: String },
    FileProcessed { filename: String, description: String },
    Error { filename: String, message: String },
    Complete { progress: u8, final_query: String },
}

/// Describes `attachments` in order, sending §6.5's events; stops early when the receiver goes away.
pub async fn preprocess(
    attachments: Vec<Attachment>,
    query: String,
    vision: Option<VisionModel>,
    events: mpsc::Sender<PreprocessEvent>,
) {
    let total = attachments.len();
    for (index, attachment) in attachments.into_iter().enumerate() {
        let progress = u8::try_from(index * 100 / total.max(1)).unwrap_or(100);
        let message = format!("Parsing file {}/{total}: {}", index + 1, attachment.file_name);
        if events.send(PreprocessEvent::Progress { progress, message }).await.is_err() {
            return;
        }
        let filename = attachment.file_name.clone();
        let event = match describe(attachment, &query, vision.as_ref()).await {
            Ok(description) => PreprocessEvent::FileProcessed { filename, description },
            Err(reason) => {
                let message = format!("Error parsing file {filename}: {reason}");
                PreprocessEvent::Error { filename, message }
            }
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
    let _ = events.send(PreprocessEvent::Complete { progress: 100, final_query: query }).await;
}

async fn describe(attachment: Attachment, query: &str, vision: Option<&VisionModel>) -> Result<String, String> {
    let Attachment { file_name, bytes } = attachment;
    if IMAGE_EXTENSIONS.contains(&parse::extension_of(&file_name).as_str()) {
        let vision = vision.ok_or_else(|| {
            format!("{} (set VLM_MODEL_URL and VLM_MODEL_NAME to describe images)", ParseError::NeedsVision)
        })?;
        let text = describe_image(vision, &bytes, &file_name, query).await?;
        return Ok(format!("Image file {file_name} content: {text}"));
    }
    let text = extract_text(file_name.clone(), bytes, MAX_DESCRIPTION_CHARS).await?;
    Ok(format!("File {file_name} content: {text}"))
}

/// A document's text (at most `limit` characters, saying what was cut), parsed on a blocking thread.
pub async fn extract_text(file_name: String, bytes: Vec<u8>, limit: usize) -> Result<String, String> {
    let elements = tokio::task::spawn_blocking(move || parse::parse_document(&file_name, &bytes))
        .await
        .map_err(|_| "the parser stopped".to_owned())?
        .map_err(|error| error.to_string())?;
    let text = elements.iter().map(|element| element.text.as_str()).collect::<Vec<_>>().join("\n\n");
    Ok(cap_chars(&text, limit))
}

/// The first `limit` characters of `text`, saying how much was left out.
fn cap_chars(text: &str, limit: usize) -> String {
    let total = text.chars().count();
    if total <= limit {
        return text.to_owned();
    }
    let kept: String = text.chars().take(limit).collect();
    format!("{kept}\n[… truncated: the file has {total} characters of text]")
}

/// The request of Nexent's image description: its sampling settings, the picture as a data URL, and an
/// instruction to describe it for answering the user's question in at most 200 characters.
pub fn vision_request(model_name: &str, image: &[u8], file_name: &str, query: &str) -> serde_json::Value {
    let media_type = match parse::extension_of(file_name).as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => "image/jpeg",
    };
    let data_url = format!("data:{media_type};base64,{}", base64::engine::general_purpose::STANDARD.encode(image));
    json!({
        "model": model_name,
        "temperature": 0.7,
        "top_p": 0.7,
        "frequency_penalty": 0.5,
        "max_tokens": 512,
        "messages": [{
            "role": "user",
            "content": [
                {"type": "text", "text": format!(
                    "Describe this picture in at most 200 characters, from the angle of answering the user's question: {query}")},
                {"type": "image_url", "image_url": {"url": data_url}},
            ],
        }],
    })
}

/// A description is a sentence; an answer past this is not one (and is not read into memory).
const VISION_ANSWER_LIMIT: u64 = 1 << 20;

async fn describe_image(vision: &VisionModel, image: &[u8], file_name: &str, query: &str) -> Result<String, String> {
    let base = vision.url.trim_end_matches('/');
    let endpoint =
        if base.ends_with("/chat/completions") { base.to_owned() } else { format!("{base}/chat/completions") };
    // Redirects only within the configured host: the image and the key go nowhere else.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .redirect(crate::fetch::same_host_redirects())
        .build()
        .map_err(|error| format!("cannot reach the vision model: {error}"))?;
    let mut request = client.post(&endpoint).json(&vision_request(&vision.model_name, image, file_name, query));
    if let Some(key) = vision.api_key.as_deref().filter(|key| !key.is_empty()) {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(|error| format!("the vision model did not answer: {error}"))?;
    let status = response.status();
    let bytes = crate::fetch::read_capped(response, VISION_ANSWER_LIMIT)
        .await
        .map_err(|error| format!("cannot read the vision model's answer: {error}"))?;
    let body: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|error| format!("the vision model answered {status} without JSON: {error}"))?;
    if !status.is_success() {
        return Err(format!("the vision model answered {status}: {body}"));
    }
    body["choices"][0]["message"]["content"]
        .as_str()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .ok_or_else(|| format!("the vision model's answer has no text: {body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot HTTP server on loopback answering every request with `response`.
    async fn answering(response: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = vec![0u8; 1 << 20];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        format!("http://{address}/v1")
    }

    #[tokio::test]
    async fn the_vision_client_refuses_other_hosts_and_huge_answers() {
        let vision = |url: String| VisionModel { url, model_name: "v".into(), api_key: Some("sk-secret".into()) };
        // A redirect elsewhere (`localhost` is another host than `127.0.0.1` to a client): the image and
        // the key must not follow it.
        let redirect = answering(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://localhost:9/steal\r\nContent-Length: 0\r\n\r\n".into(),
        )
        .await;
        let error = describe_image(&vision(redirect), b"png", "a.png", "q").await.expect_err("redirect refused");
        assert!(error.contains("redirect"), "refused, not followed: {error}");
        // An answer far past any description is not read into memory.
        let huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}", 2 << 20, "x".repeat(2 << 20));
        let error = describe_image(&vision(answering(huge).await), b"png", "a.png", "q").await.expect_err("too big");
        assert!(error.contains("limit"), "{error}");
    }

    async fn run(attachments: Vec<Attachment>, query: &str) -> Vec<PreprocessEvent> {
        let (sender, mut receiver) = mpsc::channel(4);
        tokio::spawn(preprocess(attachments, query.to_owned(), None, sender));
        let mut events = Vec::new();
        while let Some(event) = receiver.recv().await {
            events.push(event);
        }
        events
    }

    #[tokio::test]
    async fn files_are_described_by_their_text_and_images_need_a_vision_model() {
        let events = run(
            vec![
                Attachment { file_name: "notes.md".into(), bytes: b"# Plan\n\nShip on Friday.".to_vec() },
                Attachment { file_name: "photo.png".into(), bytes: b"\x89PNG".to_vec() },
            ],
            "When do we ship?",
        )
        .await;
        assert_eq!(events.len(), 5, "{events:#?}");
        assert_eq!(events[0], PreprocessEvent::Progress { progress: 0, message: "Parsing file 1/2: notes.md".into() });
        assert_eq!(
            events[1],
            PreprocessEvent::FileProcessed {
                filename: "notes.md".into(),
                description: "File notes.md content: Plan\n\nShip on Friday.".into()
            }
        );
        assert!(matches!(&events[2], PreprocessEvent::Progress { progress: 50, .. }));
        assert!(
            matches!(&events[3], PreprocessEvent::Error { message, .. } if message.starts_with("Error parsing file photo.png: images are described only by a vision model")),
            "{events:#?}"
        );
        assert_eq!(events[4], PreprocessEvent::Complete { progress: 100, final_query: "When do we ship?".into() });
        let wire = serde_json::to_value(&events[4]).expect("json");
        assert_eq!(wire, json!({"type": "complete", "progress": 100, "final_query": "When do we ship?"}));
    }

    #[test]
    fn long_texts_are_cut_with_a_note_and_vision_requests_carry_a_data_url() {
        let capped = cap_chars(&"é".repeat(10), 4);
        assert_eq!(capped, "éééé\n[… truncated: the file has 10 characters of text]");
        let request = vision_request("qwen-vl", b"abc", "cat.png", "What animal?");
        let url = request["messages"][0]["content"][1]["image_url"]["url"].as_str().expect("url");
        assert_eq!(url, "data:image/png;base64,YWJj");
        assert_eq!(request["max_tokens"], 512);
    }
}
