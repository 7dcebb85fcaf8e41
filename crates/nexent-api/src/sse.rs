//! Server-sent events in Nexent's framing (§2.1): `data: <json>\n\n` for each message, as `text/event-stream`.

use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use futures::Stream;
use serde::Serialize;
use tokio::sync::mpsc::Receiver;

/// Streams each message of `receiver` as one `data:` event until its sender is dropped. When the client goes
/// away the stream is dropped, and with it the receiver, so the producer's next send fails and it can stop.
pub fn event_stream<T: Serialize + Send + 'static>(
    receiver: Receiver<T>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        let message = receiver.recv().await?;
        let data = serde_json::to_string(&message).unwrap_or_else(|error| {
            serde_json::json!({"type": "error", "content": format!("cannot encode a message: {error}")}).to_string()
        });
        Some((Ok(Event::default().data(data)), receiver))
    });
    // No keep-alive comments: Nexent's clients read only `data:` lines, and some split on blank lines.
    Sse::new(events)
}
