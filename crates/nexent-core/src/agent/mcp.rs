//! Tools of configured MCP servers (stdio or streamable HTTP), offered to every run.

use super::tools::SharedTool;

/// The MCP servers' tools, listed when the servers connect.
#[derive(Clone, Default)]
pub struct McpTools {
    tools: std::sync::Arc<tokio::sync::RwLock<Vec<SharedTool>>>,
}

impl McpTools {
    pub async fn tools(&self) -> Vec<SharedTool> {
        self.tools.read().await.clone()
    }
}
