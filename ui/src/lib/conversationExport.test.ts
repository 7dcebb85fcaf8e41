import { describe, expect, it } from "vitest";
import type { Source } from "./agentStream";
import {
  JSON_FORMAT,
  answerMarkdown,
  conversationToJson,
  conversationToMarkdown,
  exportFileName,
  type ExportedConversation,
} from "./conversationExport";

const source = (cite_index: number, title: string, extra: Partial<Source> = {}): Source => ({
  title,
  text: `${title} text`,
  cite_index,
  tool_sign: "a",
  ...extra,
});

const conversation: ExportedConversation = {
  conversationId: 7,
  title: "Orchard questions",
  exportedAt: new Date("2026-12-06T09:30:00Z"),
  turns: [
    {
      question: "How many pear trees?",
      answer: "| Orchard | Trees |\n|---|---|\n| Larkspur | 42 [[a1]] |\n\nPlanted in 2019 [[a0]][[a1]], see [[a9]].",
      sources: [source(0, "Planting log", { filename: "log.txt" }), source(1, "Larkspur orchard"), source(2, "Never cited")],
      messageId: 12,
      opinion: "Y",
    },
    { question: "Thanks!", answer: "You are welcome.", sources: [] },
  ],
};

const labels = { user: "You", assistant: "Assistant", sources: "Sources", exported: (date: string) => `Exported ${date}` };

describe("answerMarkdown", () => {
  it("numbers citations as the screen does and lists the cited sources after the answer", () => {
    expect(answerMarkdown(conversation.turns[0].answer, conversation.turns[0].sources, "Sources")).toBe(
      "| Orchard | Trees |\n|---|---|\n| Larkspur | 42 [1] |\n\nPlanted in 2019 [2][1], see [[a9]].\n\n" +
        "Sources:\n\n1. Larkspur orchard\n2. Planting log (log.txt)",
    );
  });

  it("is the answer alone when it cites nothing", () => {
    expect(answerMarkdown("  Plain.\n", [source(0, "Unused")], "Sources")).toBe("Plain.");
  });

  it("links a source only by an http(s) address", () => {
    const text = answerMarkdown("A [[a0]] B [[a1]]", [source(0, "Web", { url: "https://example.org/a" }), source(1, "Bad", { url: "javascript:x" })], "S");
    expect(text).toContain("1. Web <https://example.org/a>");
    expect(text).toContain("2. Bad\n".trimEnd());
    expect(text).not.toContain("javascript");
  });
});

describe("conversationToMarkdown", () => {
  it("writes the title, the date and each turn under its speaker", () => {
    const markdown = conversationToMarkdown(conversation, labels);
    expect(markdown.startsWith("# Orchard questions\n\n_Exported 2026-12-06T09:30:00.000Z_\n\n## You\n\nHow many pear trees?\n\n## Assistant\n\n| Orchard |")).toBe(true);
    expect(markdown).toContain("| Larkspur | 42 [1] |");
    expect(markdown).toContain("## You\n\nThanks!\n\n## Assistant\n\nYou are welcome.\n");
    expect(markdown).not.toMatch(/\[\[a[01]\]\]/);
    expect(markdown.endsWith("\n")).toBe(true);
  });

  it("leaves out an answer that never came (a stopped run)", () => {
    const markdown = conversationToMarkdown({ ...conversation, turns: [{ question: "Hello?", answer: "", sources: [] }] }, labels);
    expect(markdown).toContain("## You\n\nHello?\n");
    expect(markdown).not.toContain("## Assistant");
  });
});

describe("conversationToJson", () => {
  it("keeps the answer as written with every source found, numbered when cited", () => {
    const parsed = JSON.parse(conversationToJson(conversation));
    expect(parsed.format).toBe(JSON_FORMAT);
    expect(parsed.version).toBe(1);
    expect(parsed.conversation_id).toBe(7);
    expect(parsed.title).toBe("Orchard questions");
    expect(parsed.exported_at).toBe("2026-12-06T09:30:00.000Z");
    expect(parsed.messages.map((message: { role: string }) => message.role)).toEqual(["user", "assistant", "user", "assistant"]);
    const answer = parsed.messages[1];
    expect(answer.content).toBe(conversation.turns[0].answer);
    expect(answer.message_id).toBe(12);
    expect(answer.opinion).toBe("Y");
    expect(answer.sources.map((item: { cite: string; number: number | null; title: string }) => [item.cite, item.number, item.title])).toEqual([
      ["a0", 2, "Planting log"],
      ["a1", 1, "Larkspur orchard"],
      ["a2", null, "Never cited"],
    ]);
    expect(answer.sources[0]).toMatchObject({ filename: "log.txt", text: "Planting log text", url: null, score: null });
    expect(parsed.messages[3]).toEqual({ role: "assistant", content: "You are welcome.", opinion: null, sources: [] });
  });
});

describe("exportFileName", () => {
  it("makes a safe name from any title", () => {
    expect(exportFileName("Orchard questions", "md")).toBe("Orchard-questions.md");
    expect(exportFileName("../../etc/passwd", "json")).toBe("etc-passwd.json");
    expect(exportFileName("果园 问题？", "md")).toBe("果园-问题.md");
    expect(exportFileName("???", "json")).toBe("conversation.json");
    expect(exportFileName("x".repeat(300), "md")).toBe(`${"x".repeat(80)}.md`);
  });
});
