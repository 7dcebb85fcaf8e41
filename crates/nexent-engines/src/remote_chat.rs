//! Chat on any OpenAI-compatible `/v1/chat/completions` server (vLLM, llama-server, Ollama, LM Studio, a
//! cloud API, a ModelEngine hub, or another Nexent Local), streamed over SSE, with tool calls.
//!
//! The server is trusted with the conversation, not with our memory: redirects stay on its host, each SSE
//! line and the whole stream are capped ([`SseLines`]), an error body is read up to a cap, and tool calls
//! are limited in number ([`MAX_TOOL_CALLS`]).

use std::time::Duration;

use futures::StreamExt;
use nexent_core::chat::{
    ChatError, ChatEvent, ChatModel, ChatRequest, ChatStream, FinishReason, Role, ToolCall, ToolChoice, Usage,
};
use nexent_core::fetch::{read_capped, same_host_redirects};
use serde_json::{Value, json};

/// The longest line of the event stream (one chunk of a few tokens is far below).
const MAX_LINE_BYTES: usize = 1024 * 1024;
/// The most a whole answer may stream (a long answer with tool calls is far below).
const MAX_STREAM_BYTES: usize = 64 * 1024 * 1024;
/// The most of an error answer that is read.
const MAX_ERROR_BYTES: u64 = 64 * 1024;
/// Tool calls in one answer: a remote's `index` sizes the list, so it is bounded.
pub const MAX_TOOL_CALLS: usize = 64;

pub struct RemoteChat {
    client: reqwest::Client,
    endpoint: String,
    api_key: Option<String>,
    model_name: String,
}

impl RemoteChat {
    /// `base_url` is the server's API root (e.g. `http://host:8000/v1`) or the full completions URL.
    pub fn new(base_url: &str, api_key: Option<String>, model_name: &str) -> Result<Self, ChatError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(120))
            .redirect(same_host_redirects())
            .build()
            .map_err(|error| ChatError::Unavailable(error.to_string()))?;
        let trimmed = base_url.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(ChatError::Unavailable(format!("the model {model_name} has no base_url")));
        }
        let endpoint = if trimmed.ends_with("/chat/completions") {
            trimmed.to_owned()
        } else {
            format!("{trimmed}/chat/completions")
        };
        Ok(Self { client, endpoint, api_key: api_key.filter(|key| !key.is_empty()), model_name: model_name.to_owned() })
    }
}

/// OpenAI's request body for `request`.
pub fn request_body(model: &str, request: &ChatRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|message| {
            let mut wire = json!({"role": message.role.as_str(), "content": message.content});
            if message.role == Role::Assistant && !message.tool_calls.is_empty() {
                wire["tool_calls"] = Value::Array(
                    message
                        .tool_calls
                        .iter()
                        .map(|call| json!({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}))
                        .collect(),
                );
            }
            if let Some(id) = &message.tool_call_id {
                wire["tool_call_id"] = json!(id);
            }
            wire
        })
        .collect();
    let mut body = json!({"model": model, "messages": messages, "stream": true});
    if let Some(max) = request.max_tokens {
        body["max_tokens"] = json!(max);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(top_p) = request.top_p {
        body["top_p"] = json!(top_p);
    }
    if !request.stop.is_empty() {
        body["stop"] = json!(request.stop);
    }
    if !request.tools.is_empty() {
        body["tools"] = Value::Array(
            request
                .tools
                .iter()
                .map(|tool| json!({"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters}}))
                .collect(),
        );
        match request.tool_choice {
            ToolChoice::Auto => {}
            ToolChoice::Required => body["tool_choice"] = json!("required"),
            ToolChoice::None => body["tool_choice"] = json!("none"),
        }
    }
    body
}

/// Tool calls arrive in pieces (`index`, then name and argument fragments); this puts them together.
#[derive(Default)]
struct PartialCalls(Vec<ToolCall>);

impl PartialCalls {
    fn add(&mut self, deltas: &[Value]) -> Result<(), ChatError> {
        for delta in deltas {
            let index = delta["index"].as_u64().unwrap_or(self.0.len() as u64);
            let index = usize::try_from(index).ok().filter(|&index| index < MAX_TOOL_CALLS).ok_or_else(|| {
                ChatError::Failed(format!(
                    "the model server sent tool call #{index}; at most {MAX_TOOL_CALLS} are taken"
                ))
            })?;
            while self.0.len() <= index {
                self.0.push(ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
            }
            let call = &mut self.0[index];
            if let Some(id) = delta["id"].as_str() {
                call.id = id.to_owned();
            }
            if let Some(name) = delta["function"]["name"].as_str() {
                call.name.push_str(name);
            }
            if let Some(arguments) = delta["function"]["arguments"].as_str() {
                call.arguments.push_str(arguments);
            }
        }
        Ok(())
    }
}

/// Splits a byte stream into lines, refusing a line longer than `max_line` or more than `max_total` in all.
/// Lines are cut on bytes, so a character split between two chunks arrives whole.
struct SseLines {
    pending: Vec<u8>,
    total: usize,
    max_line: usize,
    max_total: usize,
}

impl SseLines {
    fn new(max_line: usize, max_total: usize) -> Self {
        Self { pending: Vec::new(), total: 0, max_line, max_total }
    }

    /// The lines `chunk` completes (without their line ends).
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, ChatError> {
        self.total += chunk.len();
        if self.total > self.max_total {
            return Err(ChatError::Failed(format!("the model server streamed more than {} bytes", self.max_total)));
        }
        self.pending.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned());
        }
        if self.pending.len() > self.max_line {
            return Err(ChatError::Failed(format!("the model server sent a line longer than {} bytes", self.max_line)));
        }
        Ok(lines)
    }
}

fn finish_reason(text: Option<&str>) -> FinishReason {
    match text {
        Some("length") => FinishReason::Length,
        Some("tool_calls") => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

impl ChatModel for RemoteChat {
    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn chat(&self, request: ChatRequest) -> Result<ChatStream, ChatError> {
        let mut http = self.client.post(&self.endpoint).json(&request_body(&self.model_name, &request));
        if let Some(key) = &self.api_key {
            http = http.bearer_auth(key);
        }
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<ChatEvent, ChatError>>(64);
        tokio::spawn(async move {
            let outcome = async {
                let response =
                    http.send().await.map_err(|error| ChatError::Unavailable(error.without_url().to_string()))?;
                let status = response.status();
                if !status.is_success() {
                    let body = read_capped(response, MAX_ERROR_BYTES).await.unwrap_or_default();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let message =
                        body.pointer("/error/message").and_then(Value::as_str).unwrap_or("no message").to_owned();
                    return Err(ChatError::Unavailable(format!("the model server answered {status}: {message}")));
                }
                let mut bytes = response.bytes_stream();
                let mut lines = SseLines::new(MAX_LINE_BYTES, MAX_STREAM_BYTES);
                let (mut calls, mut reason, mut usage) =
                    (PartialCalls::default(), FinishReason::Stop, Usage::default());
                while let Some(chunk) = bytes.next().await {
                    let chunk = chunk.map_err(|error| ChatError::Failed(error.without_url().to_string()))?;
                    for line in lines.push(&chunk)? {
                        let Some(data) = line.trim().strip_prefix("data:").map(str::trim) else { continue };
                        if data == "[DONE]" {
                            break;
                        }
                        let Ok(event) = serde_json::from_str::<Value>(data) else { continue };
                        if let Some(message) = event.pointer("/error/message").and_then(Value::as_str) {
                            return Err(ChatError::Failed(message.to_owned()));
                        }
                        let choice = &event["choices"][0];
                        if let Some(text) = choice["delta"]["content"].as_str().filter(|text| !text.is_empty())
                            && sender.send(Ok(ChatEvent::Text(text.to_owned()))).await.is_err()
                        {
                            return Ok(()); // The caller went away; dropping the response closes the connection.
                        }
                        if let Some(deltas) = choice["delta"]["tool_calls"].as_array() {
                            calls.add(deltas)?;
                        }
                        if let Some(text) = choice["finish_reason"].as_str() {
                            reason = finish_reason(Some(text));
                        }
                        if let Some(counts) = event.get("usage").filter(|usage| usage.is_object()) {
                            usage.prompt_tokens = counts["prompt_tokens"].as_u64().unwrap_or(0) as u32;
                            usage.completion_tokens = counts["completion_tokens"].as_u64().unwrap_or(0) as u32;
                        }
                    }
                }
                if !calls.0.is_empty() {
                    reason = FinishReason::ToolCalls;
                    let _ = sender.send(Ok(ChatEvent::ToolCalls(calls.0))).await;
                }
                let _ = sender.send(Ok(ChatEvent::Finished { reason, usage })).await;
                Ok(())
            }
            .await;
            if let Err(error) = outcome {
                let _ = sender.send(Err(error)).await;
            }
        });
        Ok(Box::pin(futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (event, receiver))
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_http;
    use nexent_core::chat::ChatMessage;

    #[test]
    fn requests_and_streamed_tool_calls_follow_openai() {
        let mut request = ChatRequest::new(vec![ChatMessage::new(Role::User, "hi")]);
        request.max_tokens = Some(5);
        request.stop = vec!["END".into()];
        let body = request_body("m", &request);
        assert_eq!(body["messages"][0], json!({"role": "user", "content": "hi"}));
        assert_eq!(
            (body["max_tokens"].clone(), body["stream"].clone(), body["stop"].clone()),
            (json!(5), json!(true), json!(["END"]))
        );
        let mut calls = PartialCalls::default();
        calls
            .add(&[json!({"index": 0, "id": "c1", "function": {"name": "sea", "arguments": "{\"q\":"}})])
            .expect("first");
        calls.add(&[json!({"index": 0, "function": {"arguments": "\"tide\"}"}})]).expect("second");
        assert_eq!(calls.0, [ToolCall { id: "c1".into(), name: "sea".into(), arguments: "{\"q\":\"tide\"}".into() }]);
        assert!(calls.add(&[json!({"index": 63, "function": {"name": "last"}})]).is_ok());
        assert!(calls.add(&[json!({"index": 64, "function": {"name": "one too many"}})]).is_err());
        assert!(calls.add(&[json!({"index": u64::MAX, "function": {"name": "huge"}})]).is_err());
        assert_eq!(calls.0.len(), MAX_TOOL_CALLS, "a refused index grows nothing");
    }

    async fn answer_of(server_url: &str) -> Result<Vec<ChatEvent>, ChatError> {
        let chat = RemoteChat::new(&format!("{server_url}/v1"), Some("sk-test".into()), "m")?;
        let stream = chat.chat(ChatRequest::new(vec![ChatMessage::new(Role::User, "hi")]))?;
        stream.collect::<Vec<_>>().await.into_iter().collect()
    }

    fn sse(events: &[&str]) -> Vec<u8> {
        let body: String = events.iter().map(|event| format!("data: {event}\n\n")).collect();
        test_http::response("200 OK", &["Content-Type: text/event-stream"], body.as_bytes())
    }

    #[tokio::test]
    async fn answers_stream_from_a_real_socket() {
        let server = test_http::CannedServer::start(sse(&[
            r#"{"choices":[{"delta":{"content":"h\u00e9"}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ]))
        .await;
        let events = answer_of(&server.url).await.expect("an answer");
        assert!(matches!(&events[0], ChatEvent::Text(text) if text == "h\u{e9}"), "{events:?}");
        assert!(matches!(events.last(), Some(ChatEvent::Finished { reason: FinishReason::Stop, .. })));
    }

    #[tokio::test]
    async fn redirects_to_another_host_are_refused() {
        let elsewhere = test_http::CannedServer::start(sse(&["[DONE]"])).await;
        // Same address, other name: a host is a host, whatever it resolves to.
        let location = format!("Location: http://localhost:{}/v1/chat/completions", elsewhere.port);
        let redirecting =
            test_http::CannedServer::start(test_http::response("307 Temporary Redirect", &[&location], b"")).await;
        let refused = answer_of(&redirecting.url).await.expect_err("the redirect is not followed");
        assert!(refused.to_string().contains("redirect"), "{refused}");
        assert_eq!((redirecting.hits(), elsewhere.hits()), (1, 0), "the other host never sees the request");
    }

    #[tokio::test]
    async fn long_lines_long_streams_and_huge_tool_indices_end_the_answer() {
        let endless_line = [b"data: ".as_slice(), &vec![b'x'; MAX_LINE_BYTES + 1]].concat();
        let server = test_http::CannedServer::start(test_http::response_until_close(
            "200 OK",
            &["Content-Type: text/event-stream"],
            &endless_line,
        ))
        .await;
        let refused = answer_of(&server.url).await.expect_err("a line past the cap");
        assert!(refused.to_string().contains("longer than"), "{refused}");

        let index = r#"{"choices":[{"delta":{"tool_calls":[{"index":100000000,"function":{"name":"x"}}]}}]}"#;
        let server = test_http::CannedServer::start(sse(&[index, "[DONE]"])).await;
        let refused = answer_of(&server.url).await.expect_err("an index past the cap");
        assert!(refused.to_string().contains("tool call #100000000"), "{refused}");

        let huge_error = [br#"{"error":{"message":""#.as_slice(), &vec![b'x'; 1 << 20], br#""}}"#].concat();
        let server =
            test_http::CannedServer::start(test_http::response("500 Internal Server Error", &[], &huge_error)).await;
        let refused = answer_of(&server.url).await.expect_err("a server error");
        assert!(refused.to_string().contains("no message"), "an error body past the cap is not read: {refused}");
    }

    #[test]
    fn stream_lines_are_whole_and_bounded() {
        let mut lines = SseLines::new(16, 64);
        assert_eq!(lines.push(b"data: a\r\ndata: \xC3").expect("first"), ["data: a"]);
        assert_eq!(lines.push(b"\xA9\n").expect("second"), ["data: \u{e9}"], "a character split between chunks");
        assert!(lines.push(&[b'x'; 17]).is_err(), "a line past the cap");
        let mut lines = SseLines::new(16, 64);
        for _ in 0..8 {
            lines.push(b"data: 1\n").expect("within the total (8 lines of 8 bytes)");
        }
        assert!(lines.push(b"data: 1\n").is_err(), "past the total");
    }
}
