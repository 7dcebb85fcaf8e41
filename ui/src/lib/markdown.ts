// What models write, as safe HTML: Markdown (GitHub's flavour: tables, task lists, strikethrough, bare
// links) through marked, then DOMPurify. The model is not trusted:
// - raw HTML in the Markdown is shown as text (escaped), never made into elements;
// - links keep only http(s) and mailto destinations, open in a new tab, `rel="noopener noreferrer"`;
//   images become links to them (the page loads nothing from elsewhere; its CSP would refuse it anyway);
// - DOMPurify then keeps only the elements and attributes this renderer writes, as a second line.
// Citations `[[a0]]` become the same numbered buttons as before (`data-cite` names the source; a mark of an
// unknown source stays text). Code blocks get a language label, a copy button (`data-copy-code`) and, when
// the highlighter is loaded, highlight.js's classes.
//
// For streaming, `splitBlocks` cuts an answer into its top-level blocks (paragraphs, lists, tables, code):
// a view renders each block on its own and keeps the HTML of those that did not change.

import DOMPurify from "dompurify";
import { Marked, Renderer, type Token, type Tokens, type TokenizerAndRendererExtension } from "marked";
import type { Citation } from "./citations";
import type { Highlighter } from "./highlight";

export interface MarkdownLabels {
  /** The copy button of a code block. */
  copyCode: string;
  /** A citation's accessible name. */
  citation: (number: number, title: string) => string;
  /** A task list's checkbox, done or not. */
  taskDone: string;
  taskOpen: string;
}

export interface RenderOptions {
  labels: MarkdownLabels;
  /** The answer's citations by mark (`a0`); marks not in it stay text. */
  citations?: ReadonlyMap<string, Citation>;
  /** Highlights code blocks; plain code without it. */
  highlight?: Highlighter | null;
}

/** Destinations a link may have. */
const SAFE_URL = /^(?:https?:\/\/|mailto:)/i;
const CITATION_MARK = /^\[\[([a-z]+)(\d+)\]\]/;
/** Answers longer than this are shown as plain text: Markdown of that size is no answer to read. */
export const MAX_MARKDOWN_CHARS = 200_000;

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => ESCAPES[character]);
}

/** A destination a link may keep (trimmed), or null. */
export function safeHref(href: string | null | undefined): string | null {
  const trimmed = (href ?? "").trim();
  return SAFE_URL.test(trimmed) && !/[\s\u0000-\u001f]/.test(trimmed) ? trimmed : null;
}

function anchor(href: string, inner: string, title?: string | null): string {
  const titled = title ? ` title="${escapeHtml(title)}"` : "";
  return `<a href="${escapeHtml(href)}"${titled} target="_blank" rel="noopener noreferrer">${inner}</a>`;
}

// The options of the render in progress (rendering is synchronous: one at a time).
let active: RenderOptions | null = null;
// Inside a link's text a citation is plain text: a button inside a link is not allowed (nested controls).
let insideLink = 0;

const citationExtension: TokenizerAndRendererExtension = {
  name: "citation",
  level: "inline",
  start(source: string) {
    const index = source.indexOf("[[");
    return index < 0 ? undefined : index;
  },
  tokenizer(source: string) {
    const match = CITATION_MARK.exec(source);
    return match ? { type: "citation", raw: match[0], key: `${match[1]}${match[2]}` } : undefined;
  },
  renderer(token) {
    const citation = active?.citations?.get(token.key as string);
    if (!citation || !active) return escapeHtml(token.raw);
    if (insideLink > 0) return `[${citation.number}]`;
    const label = active.labels.citation(citation.number, citation.source.title);
    return `<button type="button" class="citation" data-cite="${escapeHtml(citation.key)}" aria-label="${escapeHtml(label)}">[${citation.number}]</button>`;
  },
};

const marked = new Marked({ gfm: true, breaks: true, async: false });
marked.use({
  extensions: [citationExtension],
  renderer: {
    // Raw HTML from the model: shown as the text it is.
    html({ text }) {
      return escapeHtml(text);
    },
    link(token: Tokens.Link) {
      insideLink += 1;
      let inner: string;
      try {
        inner = token.autolink ? escapeHtml(token.text) : this.parser.parseInline(token.tokens);
      } finally {
        insideLink -= 1;
      }
      const href = safeHref(token.href);
      return href ? anchor(href, inner, token.title) : inner;
    },
    image({ href, title, text }: Tokens.Image) {
      const safe = safeHref(href);
      const label = escapeHtml(text || href);
      return safe ? anchor(safe, label, title) : label;
    },
    // The answer sits under the screen's own headings: its `#` is a level-3 heading.
    heading({ tokens, depth }: Tokens.Heading) {
      const level = Math.min(depth + 2, 6);
      return `<h${level}>${this.parser.parseInline(tokens)}</h${level}>\n`;
    },
    code({ text, lang }: Tokens.Code) {
      const language = /^[\w#+.-]+/.exec(lang ?? "")?.[0] ?? "";
      const highlighted = language && active?.highlight ? active.highlight(text, language) : null;
      const body = highlighted ?? escapeHtml(text);
      const className = language ? ` class="hljs language-${escapeHtml(language.toLowerCase())}"` : ' class="hljs"';
      const copy = escapeHtml(active?.labels.copyCode ?? "Copy code");
      return (
        `<div class="code-block"><div class="code-head"><span class="code-language">${escapeHtml(language)}</span>` +
        `<button type="button" class="copy-code" data-copy-code="">${copy}</button></div>` +
        `<pre tabindex="0"><code${className}>${body}</code></pre></div>\n`
      );
    },
    checkbox({ checked }: Tokens.Checkbox) {
      const label = escapeHtml((checked ? active?.labels.taskDone : active?.labels.taskOpen) ?? "");
      return `<input type="checkbox" disabled=""${checked ? ' checked=""' : ""} aria-label="${label}"> `;
    },
    // A wide table scrolls inside its own box (which the keyboard can reach, to scroll it).
    table(token: Tokens.Table) {
      return `<div class="table-wrap" tabindex="0">${Renderer.prototype.table.call(this, token)}</div>\n`;
    },
  },
});

const ALLOWED_TAGS = [
  "a", "blockquote", "br", "button", "code", "del", "div", "em", "h3", "h4", "h5", "h6", "hr", "input", "li",
  "ol", "p", "pre", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
];
const ALLOWED_ATTR = [
  "align", "aria-label", "checked", "class", "data-cite", "data-copy-code", "disabled", "href", "rel", "start",
  "tabindex", "target", "title", "type",
];

let hooked = false;
function purify(html: string): string {
  if (!DOMPurify.isSupported) return escapeHtml(html);
  if (!hooked) {
    hooked = true;
    DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.nodeName === "A") {
        if (safeHref(node.getAttribute("href"))) {
          node.setAttribute("target", "_blank");
          node.setAttribute("rel", "noopener noreferrer");
        } else {
          node.removeAttribute("href");
          node.removeAttribute("target");
          node.removeAttribute("rel");
        }
      } else if (node.nodeName === "INPUT") {
        // Only the task list's read-only checkbox.
        node.setAttribute("type", "checkbox");
        node.setAttribute("disabled", "");
      } else if (node.nodeName === "BUTTON") {
        node.setAttribute("type", "button");
      }
    });
  }
  return DOMPurify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    // DOMPurify's own pattern with only http(s) and mailto as schemes (it is checked against the value of
    // every attribute; values without a scheme pass, and the hook above checks links again).
    ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.\-]+(?:[^a-z+.\-:]|$))/i,
  });
}

/**
 * A block longer than this (a paragraph, list or table, not code) is shown as plain text: marked's inline
 * parsing of emphasis is quadratic on hostile input (`*a*a*a…`), and no answer has a paragraph this long.
 */
export const MAX_BLOCK_CHARS = 16_000;

function plain(text: string, element: "pre" | "p"): string {
  return `<${element} class="plain">${escapeHtml(text)}</${element}>`;
}

/** One block (see `splitBlocks`) as safe HTML. */
function renderBlock(block: string, options: RenderOptions): string {
  if (block.length > MAX_BLOCK_CHARS && !/^ {0,3}(```|~~~)/.test(block)) return plain(block, "p");
  active = options;
  try {
    return purify(marked.parse(block) as string);
  } catch {
    // Markdown marked cannot take (nesting thousands deep overflows its stack): shown as text.
    return plain(block, "pre");
  } finally {
    active = null;
    insideLink = 0;
  }
}

/** Markdown as safe HTML. */
export function renderMarkdown(markdown: string, options: RenderOptions): string {
  if (markdown.length > MAX_MARKDOWN_CHARS) return plain(markdown, "pre");
  return splitBlocks(markdown)
    .map((block) => renderBlock(block, options))
    .join("");
}

/**
 * The top-level blocks of `markdown`, each as its source text (blank lines between them dropped), so a view
 * can render them one by one and keep those that did not change. Only marked's block level runs here (it is
 * linear; inline parsing is left to each block's render). Link reference definitions (`[x]: https://…`) are
 * added to every block that might use them. An answer too long for Markdown is one block (plain text).
 */
export function splitBlocks(markdown: string): string[] {
  if (markdown.length > MAX_MARKDOWN_CHARS) return [markdown];
  const lexer = new marked.Lexer(marked.defaults);
  let tokens: Token[];
  try {
    tokens = lexer.blockTokens(markdown.replace(/\r\n|\r/g, "\n"), lexer.tokens);
  } catch {
    return [markdown];
  }
  const definitions = Object.entries(lexer.tokens.links ?? {})
    .map(([label, link]) => `[${label}]: <${link.href}>${link.title ? ` "${link.title.replace(/"/g, "")}"` : ""}`)
    .join("\n");
  const blocks: string[] = [];
  for (const token of tokens) {
    if (token.type === "space" || token.type === "def") continue;
    blocks.push(definitions && token.raw.includes("[") ? `${token.raw}\n\n${definitions}` : token.raw);
  }
  return blocks;
}

/** Whether `markdown` has a fenced or indented code block (the highlighter is then worth loading). */
export function hasCodeBlock(markdown: string): boolean {
  return /^( {0,3}(```|~~~)|( {4}|\t)\S)/m.test(markdown);
}

/**
 * The words of `markdown` without its syntax, for reading aloud: rendered, then the text taken from the
 * elements (citation marks, code blocks' labels and buttons left out), blocks on lines of their own.
 */
export function markdownToPlainText(markdown: string): string {
  const labels: MarkdownLabels = { copyCode: "", citation: () => "", taskDone: "", taskOpen: "" };
  const html = renderMarkdown(markdown.replace(/\[\[[a-z]+\d+\]\]/g, ""), { labels });
  if (typeof DOMParser === "undefined") return markdown;
  const body = new DOMParser().parseFromString(html, "text/html").body;
  for (const element of body.querySelectorAll(".code-head")) element.remove();
  // The line breaks marked writes between elements are not the text's; code keeps its own.
  const walker = body.ownerDocument.createTreeWalker(body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement?.closest("pre")) node.nodeValue = (node.nodeValue ?? "").replace(/\s+/g, " ");
  }
  for (const element of body.querySelectorAll("p, li, tr, h3, h4, h5, h6, pre, blockquote")) element.append("\n");
  for (const cell of body.querySelectorAll("td, th")) cell.append(" ");
  return (body.textContent ?? "")
    .split("\n")
    .map((line) => line.replace(/[ \t]+/g, " ").trim())
    .filter(Boolean)
    .join("\n");
}
