"""Lists and calls Nexent Local's own MCP tools at <base>/mcp with the official `mcp` SDK; prints JSON."""

import asyncio
import json
import sys

from mcp import Client


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def main(base: str) -> None:
    async with Client(f"{base}/mcp") as client:
        tools = await client.list_tools()
        listed = text_of(await client.call_tool("list_indices", {}))
        found = text_of(await client.call_tool("knowledge_base_search", {"query": "Zorblax warranty", "top_k": 2}))
        bad = await client.call_tool("knowledge_base_search", {"query": "  "})
        print(json.dumps({
            "tools": sorted(tool.name for tool in tools.tools),
            "indices": json.loads(listed),
            "search": json.loads(found),
            "empty_query_is_error": bool(bad.is_error),
            "empty_query_message": text_of(bad),
        }))


asyncio.run(main(sys.argv[1]))
