"""A small stdio MCP server for the agent tests (official `mcp` SDK): one tool whose answers no model can
know, so a correct final answer proves the agent called it."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("warehouse")

STOCK = {"blue widget": 4812, "copper gear": 97}


@server.tool()
def warehouse_stock(item: str) -> str:
    """How many units of an item the warehouse holds right now."""
    key = item.lower().replace("_", " ").replace("-", " ").strip().rstrip("s")
    for name, count in STOCK.items():
        if name in key or key in name:
            return f"The warehouse holds {count} units of {name}s."
    return f"The warehouse holds no {item}."


if __name__ == "__main__":
    server.run()
