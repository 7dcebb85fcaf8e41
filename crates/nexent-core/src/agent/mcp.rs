//! Tools of configured MCP servers, offered to every agent run, through `rmcp`: a server is a command
//! started as a child process (stdio) or a streamable-HTTP URL. Servers connect in the background at
//! start-up (a run waits for a first attempt still under way); one that cannot be reached is logged and
//! retried in the background at most every [`RETRY_AFTER`], and its tools are absent meanwhile, so an MCP
//! server that is down never stops or slows the agent.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use tokio::sync::Mutex;

use super::machine::{ToolKind, ToolOutcome, ToolSpec};
use super::tools::{SharedTool, Tool};
use crate::chat::ToolDefinition;

/// How long connecting (start, initialize, list tools) and one call may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server that failed is left alone before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Characters of a tool's result given to the model.
const MAX_RESULT_CHARS: usize = 8000;

/// One configured MCP server.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServerConfig {
    pub name: String,
    pub transport: McpTransport,
}

#[derive(Debug, Clone, PartialEq)]
pub enum McpTransport {
    /// A program speaking MCP on its standard input and output.
    Stdio { command: String, args: Vec<String> },
    /// A streamable-HTTP endpoint.
    Http { url: String },
}

type Client = RunningService<RoleClient, ()>;

struct Connection {
    config: McpServerConfig,
    /// Held while connecting, so a run can wait for an attempt under way.
    client: Mutex<Option<Arc<Client>>>,
    tools: std::sync::RwLock<Vec<SharedTool>>,
    /// When the last attempt to connect ended; `None` before the first.
    last_attempt: std::sync::Mutex<Option<std::time::Instant>>,
}

/// The MCP servers and their tools.
#[derive(Clone, Default)]
pub struct McpTools {
    connections: Arc<Vec<Arc<Connection>>>,
}

impl McpTools {
    /// Starts connecting to `servers` in the background.
    pub fn connect(servers: Vec<McpServerConfig>) -> Self {
        let connections: Vec<Arc<Connection>> = servers
            .into_iter()
            .map(|config| {
                Arc::new(Connection {
                    config,
                    client: Mutex::new(None),
                    tools: Default::default(),
                    last_attempt: std::sync::Mutex::new(None),
                })
            })
            .collect();
        for connection in &connections {
            let connection = connection.clone();
            tokio::spawn(async move { connection.ensure().await });
        }
        Self { connections: Arc::new(connections) }
    }

    /// The tools of every connected server. A first attempt still under way is waited for; a server that
    /// failed is retried in the background (at most every [`RETRY_AFTER`]) and left out of this run.
    pub async fn tools(&self) -> Vec<SharedTool> {
        let mut tools = Vec::new();
        for connection in self.connections.iter() {
            let last_attempt = *crate::sync::lock(&connection.last_attempt);
            match last_attempt {
                None => connection.ensure().await,
                Some(at)
                    if at.elapsed() >= RETRY_AFTER
                        && connection
                            .client
                            .try_lock()
                            .is_ok_and(|client| client.as_ref().is_none_or(|client| client.is_closed())) =>
                {
                    let connection = connection.clone();
                    tokio::spawn(async move { connection.ensure().await });
                }
                Some(_) => {}
            }
            tools.extend(crate::sync::read(&connection.tools).iter().cloned());
        }
        tools
    }

    /// `(server, connected, tool names)` of every configured server.
    pub async fn status(&self) -> Vec<(String, bool, Vec<String>)> {
        let mut status = Vec::new();
        for connection in self.connections.iter() {
            let connected = connection.client.lock().await.is_some();
            let names = crate::sync::read(&connection.tools).iter().map(|tool| tool.spec().definition.name).collect();
            status.push((connection.config.name.clone(), connected, names));
        }
        status
    }
}

impl Connection {
    /// Connects if not connected, and lists the server's tools.
    async fn ensure(self: &Arc<Self>) {
        let mut client = self.client.lock().await;
        if client.as_ref().is_some_and(|client| !client.is_closed()) {
            return;
        }
        // An attempt that just failed (perhaps the one this caller waited for) is not repeated at once.
        let recent = crate::sync::lock(&self.last_attempt).is_some_and(|at| at.elapsed() < RETRY_AFTER);
        if client.is_none() && recent {
            return;
        }
        *client = None;
        let outcome = tokio::time::timeout(CONNECT_TIMEOUT, self.open()).await;
        *crate::sync::lock(&self.last_attempt) = Some(std::time::Instant::now());
        match outcome {
            Ok(Ok((connected, tools))) => {
                tracing::info!(server = %self.config.name, tools = tools.len(), "MCP server connected");
                let connected = Arc::new(connected);
                let shared: Vec<SharedTool> = tools
                    .into_iter()
                    .map(|tool| {
                        Arc::new(McpTool { server: Arc::downgrade(self), client: connected.clone(), tool })
                            as SharedTool
                    })
                    .collect();
                *crate::sync::write(&self.tools) = shared;
                *client = Some(connected);
            }
            Ok(Err(error)) => {
                tracing::warn!(server = %self.config.name, %error, "cannot connect to the MCP server");
                crate::sync::write(&self.tools).clear();
            }
            Err(_) => {
                tracing::warn!(server = %self.config.name, "the MCP server did not answer in time");
                crate::sync::write(&self.tools).clear();
            }
        }
    }

    async fn open(&self) -> Result<(Client, Vec<rmcp::model::Tool>), String> {
        let client = match &self.config.transport {
            McpTransport::Stdio { command, args } => {
                let mut process = tokio::process::Command::new(command);
                process.args(args).kill_on_drop(true);
                crate::process::die_with_parent(&mut process);
                let transport =
                    TokioChildProcess::new(process).map_err(|error| format!("cannot start {command}: {error}"))?;
                ().serve(transport).await.map_err(|error| error.to_string())?
            }
            McpTransport::Http { url } => {
                ().serve(StreamableHttpClientTransport::from_uri(url.as_str()))
                    .await
                    .map_err(|error| error.to_string())?
            }
        };
        let tools = client.list_all_tools().await.map_err(|error| error.to_string())?;
        Ok((client, tools))
    }

    async fn forget(&self, client: &Arc<Client>) {
        let mut current = self.client.lock().await;
        if current.as_ref().is_some_and(|current| Arc::ptr_eq(current, client)) {
            *current = None;
            crate::sync::write(&self.tools).clear();
        }
    }
}

struct McpTool {
    /// Weak: the connection holds its tools, so a strong reference back would keep both alive forever.
    server: std::sync::Weak<Connection>,
    client: Arc<Client>,
    tool: rmcp::model::Tool,
}

impl McpTool {
    fn server_name(&self) -> String {
        self.server.upgrade().map(|server| server.config.name.clone()).unwrap_or_default()
    }
}

impl Tool for McpTool {
    fn spec(&self) -> ToolSpec {
        let description = self.tool.description.as_deref().unwrap_or_default();
        ToolSpec {
            definition: ToolDefinition {
                name: self.tool.name.to_string(),
                description: format!("{description} (from the MCP server {})", self.server_name()),
                parameters: Value::Object((*self.tool.input_schema).clone()),
            },
            kind: ToolKind::Plain,
        }
    }

    fn call(&self, arguments: Value) -> BoxFuture<'static, ToolOutcome> {
        let client = self.client.clone();
        let server = self.server.clone();
        let name = self.tool.name.clone();
        Box::pin(async move {
            let mut request = CallToolRequestParams::new(name.clone());
            if let Value::Object(arguments) = arguments {
                request = request.with_arguments(arguments);
            }
            let result = match tokio::time::timeout(CALL_TIMEOUT, client.call_tool(request)).await {
                Ok(Ok(result)) => result,
                Ok(Err(error)) => {
                    // A transport error: connect again at the next run.
                    if let Some(server) = server.upgrade() {
                        server.forget(&client).await;
                    }
                    return ToolOutcome::Failed(format!("The MCP tool {name} failed: {error}"));
                }
                Err(_) => {
                    // A server that hangs is connected afresh at a later run rather than waited on again.
                    if let Some(server) = server.upgrade() {
                        server.forget(&client).await;
                    }
                    return ToolOutcome::Failed(format!("The MCP tool {name} did not answer within {CALL_TIMEOUT:?}"));
                }
            };
            let mut text: String = result
                .content
                .iter()
                .filter_map(|block| block.as_text().map(|text| text.text.clone()))
                .collect::<Vec<_>>()
                .join("\n");
            if let Some(structured) = result.structured_content.as_ref().filter(|_| text.is_empty()) {
                text = structured.to_string();
            }
            let text = super::machine::truncate_chars(&text, MAX_RESULT_CHARS);
            if result.is_error == Some(true) {
                ToolOutcome::Failed(format!("The MCP tool {name} reported an error: {text}"))
            } else {
                ToolOutcome::Text(text)
            }
        })
    }
}
