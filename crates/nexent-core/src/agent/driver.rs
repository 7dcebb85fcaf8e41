//! Performs a machine's effects: streams the model, calls tools, sends each message to the client, and
//! turns a stop or a client that went away into the machine's `Cancelled` event. Returns every message the
//! run produced, for saving, whether or not the client received them.

use std::collections::VecDeque;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::machine::{AgentMachine, Effect, Event, ToolOutcome};
use super::tools::ToolBox;
use crate::chat::{ChatEvent, SharedChatModel};
use crate::conversation::units::StreamUnit;

const CLIENT_GONE: &str = "The client disconnected; the run was stopped";
/// How long a message may wait for a client that does not read before the client counts as gone.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub struct Driver {
    machine: AgentMachine,
    chat: SharedChatModel,
    tools: ToolBox,
    stop: CancellationToken,
    sink: mpsc::Sender<StreamUnit>,
    started: Instant,
    pending: VecDeque<Effect>,
    produced: Vec<StreamUnit>,
    client_gone: bool,
}

impl Driver {
    pub fn new(
        machine: AgentMachine,
        chat: SharedChatModel,
        tools: ToolBox,
        stop: CancellationToken,
        sink: mpsc::Sender<StreamUnit>,
    ) -> Self {
        Self {
            machine,
            chat,
            tools,
            stop,
            sink,
            started: Instant::now(),
            pending: VecDeque::new(),
            produced: Vec::new(),
            client_gone: false,
        }
    }

    /// Runs the agent to its end; returns what it produced.
    pub async fn run(mut self) -> Vec<StreamUnit> {
        let effects = self.machine.start(self.started.elapsed());
        self.pending.extend(effects);
        while let Some(effect) = self.pending.pop_front() {
            match effect {
                Effect::Emit(unit) => self.emit(unit).await,
                Effect::Finish => break,
                _ if self.stopped() => self.cancel(),
                Effect::CallModel(request) => self.call_model(request).await,
                Effect::CallTool(call) => {
                    let outcome = match self.tools.get(&call.name).cloned() {
                        None => ToolOutcome::Failed(format!("No tool is named {}", call.name)),
                        Some(tool) => {
                            let arguments = serde_json::from_str(&call.arguments).unwrap_or_default();
                            tokio::select! {
                                outcome = tool.call(arguments) => outcome,
                                () = self.stop.cancelled() => { self.cancel(); continue; }
                            }
                        }
                    };
                    self.feed(Event::ToolFinished(outcome));
                }
            }
        }
        self.produced
    }

    fn stopped(&self) -> bool {
        self.stop.is_cancelled() || self.client_gone
    }

    /// Replaces what was planned with the machine's answer to the cancellation.
    fn cancel(&mut self) {
        // Messages the machine already produced are kept (they are saved); only planned work is dropped.
        self.pending.retain(|effect| matches!(effect, Effect::Emit(_)));
        let reason = self.client_gone.then(|| CLIENT_GONE.to_owned());
        self.feed(Event::Cancelled(reason));
    }

    fn feed(&mut self, event: Event) {
        let effects = self.machine.handle(event, self.started.elapsed());
        self.pending.extend(effects);
    }

    async fn emit(&mut self, unit: StreamUnit) {
        // A client that keeps its connection open but stops reading must not hold the run (and the model)
        // forever: a stop ends the wait, and so does a minute without progress.
        let delivered = if self.client_gone {
            true
        } else {
            tokio::select! {
                sent = tokio::time::timeout(SEND_TIMEOUT, self.sink.send(unit.clone())) => matches!(sent, Ok(Ok(()))),
                () = self.stop.cancelled(), if !self.stop.is_cancelled() => true,
            }
        };
        if !delivered {
            // Keep what was produced for saving; stop spending the model on nobody.
            self.client_gone = true;
            if !self.machine.is_finished() {
                self.cancel();
            }
        }
        self.produced.push(unit);
    }

    async fn call_model(&mut self, request: crate::chat::ChatRequest) {
        let mut stream = match self.chat.chat(request) {
            Ok(stream) => stream,
            Err(error) => return self.feed(Event::ModelFailed(error.to_string())),
        };
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                () = self.stop.cancelled() => {
                    drop(stream); // The engine stops at its next token.
                    return self.cancel();
                }
            };
            match item {
                Some(Ok(ChatEvent::Text(text))) => self.feed(Event::ModelText(text)),
                Some(Ok(ChatEvent::ToolCalls(calls))) => self.feed(Event::ModelToolCalls(calls)),
                Some(Ok(ChatEvent::Finished { reason, .. })) => return self.feed(Event::ModelFinished(reason)),
                Some(Err(error)) => return self.feed(Event::ModelFailed(error.to_string())),
                None => return self.feed(Event::ModelFailed("the model stopped without finishing its answer".into())),
            }
            // Text streams to the client token by token.
            while matches!(self.pending.front(), Some(Effect::Emit(_))) {
                if let Some(Effect::Emit(unit)) = self.pending.pop_front() {
                    self.emit(unit).await;
                }
            }
            if self.client_gone {
                return;
            }
        }
    }
}
