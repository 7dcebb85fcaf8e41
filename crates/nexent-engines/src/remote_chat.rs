//! Chat on any OpenAI-compatible `/v1/chat/completions` server (vLLM, llama-server, Ollama, LM Studio, a
//! cloud API, a ModelEngine hub, or another Nexent Local), streamed over SSE, with tool calls.

use std::time::Duration;

use futures::StreamExt;
use nexent_core::chat::{
    ChatError, ChatEvent, ChatModel, ChatRequest, ChatStream, FinishReason, Role, ToolCall, ToolChoice, Usage,
};
use serde_json::{Value, json};

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
    fn add(&mut self, deltas: &[Value]) {
        for delta in deltas {
            let index = delta["index"].as_u64().unwrap_or(self.0.len() as u64) as usize;
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
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    let message =
                        body.pointer("/error/message").and_then(Value::as_str).unwrap_or("no message").to_owned();
                    return Err(ChatError::Unavailable(format!("the model server answered {status}: {message}")));
                }
                let mut bytes = response.bytes_stream();
                let mut buffer = String::new();
                let (mut calls, mut reason, mut usage) =
                    (PartialCalls::default(), FinishReason::Stop, Usage::default());
                while let Some(chunk) = bytes.next().await {
                    let chunk = chunk.map_err(|error| ChatError::Failed(error.without_url().to_string()))?;
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buffer.find('\n') {
                        let line: String = buffer.drain(..=end).collect();
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
                            calls.add(deltas);
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
        calls.add(&[json!({"index": 0, "id": "c1", "function": {"name": "sea", "arguments": "{\"q\":"}})]);
        calls.add(&[json!({"index": 0, "function": {"arguments": "\"tide\"}"}})]);
        assert_eq!(calls.0, [ToolCall { id: "c1".into(), name: "sea".into(), arguments: "{\"q\":\"tide\"}".into() }]);
    }
}
