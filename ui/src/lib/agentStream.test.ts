import { describe, expect, it } from "vitest";
import { AgentStreamParser, applyMessage, emptyRun, runFromHistory } from "./agentStream";

const source = { title: "Orchard report", text: "The orchard has 42 trees.", cite_index: 0, tool_sign: "a", score: 0.8,
  score_details: { accurate: 0.5, semantic: 0.9 }, filename: "orchard.txt" };

describe("AgentStreamParser", () => {
  it("takes data lines split anywhere, as chunks arrive", () => {
    const parser = new AgentStreamParser();
    const text = 'data: {"type":"step_count","content":"Step 1"}\n\ndata: {"type":"final_answer","content":"Hi ✓"}\n\n';
    const bytes = new TextEncoder().encode(text);
    const messages = [];
    // One byte at a time: a multi-byte character and a line are both split across chunks.
    for (const byte of bytes) messages.push(...parser.feed(new Uint8Array([byte])));
    expect(messages).toEqual([
      { type: "step_count", content: "Step 1" },
      { type: "final_answer", content: "Hi ✓" },
    ]);
  });

  it("drops messages with an empty type or content and lines that are not JSON", () => {
    const parser = new AgentStreamParser();
    const messages = parser.feed('data: {"type":"","content":"x"}\ndata: {"type":"token_count","content":""}\ndata: nope\n: comment\n');
    expect(messages).toEqual([]);
  });
});

describe("applyMessage", () => {
  it("folds steps, calls, observations, sources and the answer", () => {
    const messages = [
      { type: "step_count", content: "Step 1" },
      { type: "model_output_thinking", content: "I will " },
      { type: "model_output_thinking", content: "search." },
      { type: "model_output_code", content: 'knowledge_base_search(query="trees")' },
      { type: "tool", content: "Using knowledge_base_search" },
      { type: "search_content", content: JSON.stringify([source]) },
      { type: "search_content", content: JSON.stringify([source]) },
      { type: "execution_logs", content: "1 result" },
      { type: "token_count", content: '<span style="color: #bbbbc2; font-size: 12px;">Duration:1.2</span>' },
      { type: "step_count", content: "Step 2" },
      { type: "error", content: "tool failed" },
      { type: "final_answer", content: "It has 42 trees [[a0]]." },
    ];
    const run = messages.reduce(applyMessage, emptyRun());
    expect(run.steps).toHaveLength(2);
    expect(run.steps[0]).toMatchObject({ number: 1, thinking: "I will search.", calls: ["Using knowledge_base_search"], observations: ["1 result"], duration: "1.2 s" });
    expect(run.steps[1].errors).toEqual(["tool failed"]);
    expect(run.sources).toHaveLength(1);
    expect(run.answer).toBe("It has 42 trees [[a0]].");
  });

  it("rebuilds a saved message from its units and search rows", () => {
    const run = runFromHistory([{ type: "final_answer", content: "Saved [[a0]]" }], [source]);
    expect(run.answer).toBe("Saved [[a0]]");
    expect(run.sources[0].title).toBe("Orchard report");
  });
});
