// A model's Markdown on screen (see lib/markdown.ts for what is allowed through). Streaming stays cheap:
// the text is cut into top-level blocks and each block is a memoized element, so a new token re-renders
// only the block it lands in (the last one); finished blocks keep their HTML and their DOM. The last block
// of a text still arriving is not highlighted (a half-written code block would be highlighted again on
// every token); it is once the text is complete. Clicks on citations and on code blocks' copy buttons are
// handled here, for all blocks at once.

import { memo, useEffect, useMemo, useSyncExternalStore, type MouseEvent } from "react";
import { citedKeys, type Citation } from "../lib/citations";
import { copyText } from "../lib/clipboard";
import { currentHighlighter, loadHighlighter, subscribeHighlighter, type Highlighter } from "../lib/highlight";
import { useT } from "../lib/i18n";
import { hasCodeBlock, renderMarkdown, splitBlocks, type MarkdownLabels } from "../lib/markdown";

interface MarkdownProps {
  text: string;
  /** The answer's citations by mark; without them every `[[a0]]` stays text. */
  citations?: ReadonlyMap<string, Citation>;
  /** More text is coming. */
  streaming?: boolean;
  onCite?: (key: string) => void;
  className?: string;
}

export const Markdown = memo(function Markdown({ text, citations, streaming = false, onCite, className }: MarkdownProps) {
  const t = useT();
  const labels = useMemo<MarkdownLabels>(
    () => ({
      copyCode: t("chat.copyCode"),
      citation: (number, title) => t("chat.citation", { number, title }),
      taskDone: t("chat.taskDone"),
      taskOpen: t("chat.taskOpen"),
    }),
    [t],
  );
  const highlighter = useSyncExternalStore(subscribeHighlighter, currentHighlighter, currentHighlighter);
  const blocks = useMemo(() => splitBlocks(text), [text]);
  const withCode = useMemo(() => hasCodeBlock(text), [text]);
  useEffect(() => {
    if (withCode && !highlighter) void loadHighlighter();
  }, [withCode, highlighter]);

  const onClick = (event: MouseEvent<HTMLDivElement>) => {
    const target = event.target as Element;
    const cite = target.closest<HTMLElement>("[data-cite]");
    if (cite) {
      onCite?.(cite.dataset.cite ?? "");
      return;
    }
    const copy = target.closest<HTMLButtonElement>("[data-copy-code]");
    if (copy) {
      const code = copy.closest(".code-block")?.querySelector("code")?.textContent ?? "";
      copyText(code).then(
        () => flash(copy, t("chat.copied"), t("chat.copyCode")),
        () => flash(copy, t("chat.copyFailed"), t("chat.copyCode")),
      );
    }
  };

  return (
    <div className={className ? `markdown ${className}` : "markdown"} onClick={onClick}>
      {blocks.map((block, index) => (
        <Block
          key={index}
          source={block}
          citations={citations}
          signature={citationSignature(block, citations)}
          labels={labels}
          highlighter={streaming && index === blocks.length - 1 ? null : highlighter}
        />
      ))}
    </div>
  );
});

/** What a block's citations look like: it is rendered again only when this (or its text) changes. */
function citationSignature(block: string, citations: ReadonlyMap<string, Citation> | undefined): string {
  if (!citations || citations.size === 0 || !block.includes("[[")) return "";
  return citedKeys(block)
    .map((key) => {
      const citation = citations.get(key);
      return citation ? `${key}=${citation.number}:${citation.source.title}` : key;
    })
    .join("|");
}

interface BlockProps {
  source: string;
  citations: ReadonlyMap<string, Citation> | undefined;
  signature: string;
  labels: MarkdownLabels;
  highlighter: Highlighter | null;
}

const Block = memo(
  function Block({ source, citations, signature, labels, highlighter }: BlockProps) {
    // `signature` stands for `citations` (a new map on every token, the same numbers for this block).
    // eslint-disable-next-line react-hooks/exhaustive-deps
    const html = useMemo(() => renderMarkdown(source, { labels, citations, highlight: highlighter }), [source, signature, labels, highlighter]);
    return <div className="markdown-block" dangerouslySetInnerHTML={{ __html: html }} />;
  },
  (before, after) =>
    before.source === after.source &&
    before.signature === after.signature &&
    before.labels === after.labels &&
    before.highlighter === after.highlighter,
);

/** Shows `text` on a button for a moment, then `label` again. */
function flash(button: HTMLButtonElement, text: string, label: string) {
  button.textContent = text;
  window.setTimeout(() => {
    if (button.isConnected) button.textContent = label;
  }, 2000);
}
