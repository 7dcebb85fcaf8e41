// A conversation as a file a person keeps: Markdown to read (citations as numbers, each answer followed by
// the sources it cites) or JSON for programs (the answer as the agent wrote it, marks and all, with every
// source found). Also the text "Copy" puts on the clipboard for one answer, and the file names.

import type { Source } from "./agentStream";
import { numberCitations, numberedAnswer, sourceKey } from "./citations";

export interface ExportedTurn {
  question: string;
  answer: string;
  sources: Source[];
  messageId?: number;
  opinion?: "Y" | "N" | null;
}

export interface ExportedConversation {
  conversationId: number | null;
  title: string;
  exportedAt: Date;
  turns: ExportedTurn[];
}

export interface ExportLabels {
  user: string;
  assistant: string;
  sources: string;
  exported: (date: string) => string;
}

export const JSON_FORMAT = "nexent-local.conversation";

/** One answer as Markdown: citations as `[1]`, then the sources it cites, numbered the same way. */
export function answerMarkdown(answer: string, sources: Source[], sourcesLabel: string): string {
  const citations = numberCitations(answer, sources);
  const text = numberedAnswer(answer, citations).trim();
  if (citations.size === 0) return text;
  const list = [...citations.values()].map(({ number, source }) => {
    const file = source.filename && source.filename !== source.title ? ` (${source.filename})` : "";
    const link = source.url && /^https?:\/\//i.test(source.url) ? ` <${source.url}>` : "";
    return `${number}. ${source.title}${file}${link}`;
  });
  return `${text}\n\n${sourcesLabel}:\n\n${list.join("\n")}`;
}

export function conversationToMarkdown(conversation: ExportedConversation, labels: ExportLabels): string {
  const parts = [`# ${conversation.title}`, `_${labels.exported(conversation.exportedAt.toISOString())}_`];
  for (const turn of conversation.turns) {
    parts.push(`## ${labels.user}`, turn.question.trim());
    if (turn.answer.trim()) parts.push(`## ${labels.assistant}`, answerMarkdown(turn.answer, turn.sources, labels.sources));
  }
  return `${parts.join("\n\n")}\n`;
}

export function conversationToJson(conversation: ExportedConversation): string {
  const messages = conversation.turns.flatMap((turn) => {
    const citations = numberCitations(turn.answer, turn.sources);
    return [
      { role: "user", content: turn.question },
      {
        role: "assistant",
        content: turn.answer,
        ...(turn.messageId !== undefined ? { message_id: turn.messageId } : {}),
        opinion: turn.opinion ?? null,
        sources: turn.sources.map((source) => ({
          cite: sourceKey(source),
          number: citations.get(sourceKey(source))?.number ?? null,
          title: source.title,
          filename: source.filename ?? null,
          url: source.url ?? null,
          score: source.score ?? null,
          text: source.text,
        })),
      },
    ];
  });
  return `${JSON.stringify(
    {
      format: JSON_FORMAT,
      version: 1,
      conversation_id: conversation.conversationId,
      title: conversation.title,
      exported_at: conversation.exportedAt.toISOString(),
      messages,
    },
    null,
    2,
  )}\n`;
}

/** A file name from the title: letters of any script, digits, `-`; never empty, never a path. */
export function exportFileName(title: string, extension: "md" | "json"): string {
  const stem = title
    .normalize("NFKC")
    .replace(/[^\p{L}\p{N}]+/gu, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 80);
  return `${stem || "conversation"}.${extension}`;
}
