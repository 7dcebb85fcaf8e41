import { describe, expect, it } from "vitest";
import { linkCitations } from "./citations";
import type { Source } from "./agentStream";

const source = (cite_index: number, title: string): Source => ({ title, text: "", cite_index, tool_sign: "a" });

describe("linkCitations", () => {
  it("numbers sources in the order the answer cites them and repeats a number for the same source", () => {
    const parts = linkCitations("Paris [[a1]] is big [[a0]] and old [[a1]].", [source(0, "Size"), source(1, "Capital")]);
    const citations = parts.filter((part) => part.kind === "citation");
    expect(citations.map((part) => part.kind === "citation" && [part.number, part.source.title])).toEqual([
      [1, "Capital"],
      [2, "Size"],
      [1, "Capital"],
    ]);
    expect(parts[0]).toEqual({ kind: "text", text: "Paris " });
    expect(parts[parts.length - 1]).toEqual({ kind: "text", text: "." });
  });

  it("keeps a mark without a known source as text", () => {
    const parts = linkCitations("See [[a9]].", [source(0, "Only")]);
    expect(parts).toEqual([{ kind: "text", text: "See [[a9]]." }]);
  });

  it("returns the whole answer when nothing is cited", () => {
    expect(linkCitations("Plain.", [])).toEqual([{ kind: "text", text: "Plain." }]);
  });
});
