import { describe, expect, it } from "vitest";
import { citedKeys, numberCitations, numberedAnswer } from "./citations";
import type { Source } from "./agentStream";

const source = (cite_index: number, title: string): Source => ({ title, text: "", cite_index, tool_sign: "a" });

describe("numberCitations", () => {
  it("numbers as linkCitations does, each source once, unknown marks left out", () => {
    const citations = numberCitations("B [[a1]] A [[a0]] B [[a1]] X [[a9]]", [source(0, "A"), source(1, "B")]);
    expect([...citations.values()].map((citation) => [citation.key, citation.number, citation.source.title])).toEqual([
      ["a1", 1, "B"],
      ["a0", 2, "A"],
    ]);
  });

  it("is empty when nothing is cited", () => {
    expect(numberCitations("Plain.", [source(0, "Unused")]).size).toBe(0);
  });

  it("never renumbers what came before when text is appended (streaming)", () => {
    const sources = [source(0, "A"), source(1, "B")];
    const before = numberCitations("First [[a1]].", sources);
    const after = numberCitations("First [[a1]]. Then [[a0]] and [[a1]].", sources);
    expect(after.get("a1")?.number).toBe(before.get("a1")?.number);
    expect(after.get("a0")?.number).toBe(2);
  });
});

describe("numberedAnswer and citedKeys", () => {
  it("writes known marks as their numbers and keeps unknown ones", () => {
    const answer = "B [[a1]] A [[a0]][[a1]] X [[a9]]";
    const citations = numberCitations(answer, [source(0, "A"), source(1, "B")]);
    expect(numberedAnswer(answer, citations)).toBe("B [1] A [2][1] X [[a9]]");
    expect(citedKeys(answer)).toEqual(["a1", "a0", "a9"]);
  });
});
