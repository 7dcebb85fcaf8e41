// Citations in an answer: the agent writes `[[a0]]` (tool sign + cite index; nexent-api.md §2.3). The chat
// screen shows each as a numbered link to its source in the sources panel (lib/markdown.ts renders them
// inside the answer's Markdown); a mark whose source is unknown is kept as plain text rather than dropped,
// so nothing the model wrote disappears. Copies and exports write the same numbers.

import type { Source } from "./agentStream";

/** A cited source and the number the answer shows for it. */
export interface Citation {
  key: string;
  number: number;
  source: Source;
}

const CITATION = /\[\[([a-z]+)(\d+)\]\]/g;

export function sourceKey(source: Pick<Source, "tool_sign" | "cite_index">): string {
  return `${source.tool_sign}${source.cite_index}`;
}

/**
 * The answer's citations by mark (`a0`), numbered in the order the answer first cites them (a source cited
 * again keeps its number), in the order of their numbers. Marks of unknown sources are left out (they stay
 * text where the answer is shown). Text appended to the answer (streaming) never renumbers what came before.
 */
export function numberCitations(answer: string, sources: Source[]): Map<string, Citation> {
  const byKey = new Map(sources.map((source) => [sourceKey(source), source]));
  const citations = new Map<string, Citation>();
  for (const match of answer.matchAll(CITATION)) {
    const key = `${match[1]}${match[2]}`;
    const source = byKey.get(key);
    if (source && !citations.has(key)) citations.set(key, { key, number: citations.size + 1, source });
  }
  return citations;
}

/** The marks (`a0`) a piece of text cites, in order, each once. */
export function citedKeys(text: string): string[] {
  return [...new Set([...text.matchAll(CITATION)].map((match) => `${match[1]}${match[2]}`))];
}

/** The answer as portable text: each known mark becomes its number (`[1]`), unknown marks stay as written. */
export function numberedAnswer(answer: string, citations: Map<string, Citation>): string {
  return answer.replace(CITATION, (whole, sign: string, index: string) => {
    const citation = citations.get(`${sign}${index}`);
    return citation ? `[${citation.number}]` : whole;
  });
}
