// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import type { Source } from "./agentStream";
import { numberCitations } from "./citations";
import { highlight } from "./highlightLanguages";
import {
  MAX_BLOCK_CHARS,
  MAX_MARKDOWN_CHARS,
  hasCodeBlock,
  markdownToPlainText,
  renderMarkdown,
  safeHref,
  splitBlocks,
  type RenderOptions,
} from "./markdown";

const labels: RenderOptions["labels"] = {
  copyCode: "Copy code",
  citation: (number, title) => `Source ${number}: ${title}`,
  taskDone: "done",
  taskOpen: "not done",
};

/** The rendered HTML as a DOM, to ask what elements it makes. */
function dom(markdown: string, options: Partial<RenderOptions> = {}): HTMLElement {
  const root = document.createElement("div");
  root.innerHTML = renderMarkdown(markdown, { labels, ...options });
  return root;
}

const source = (cite_index: number, title: string): Source => ({ title, text: "", cite_index, tool_sign: "a" });

/** Every attribute of every element, as `tag[name=value]`. */
function attributes(root: HTMLElement): string[] {
  return [...root.querySelectorAll("*")].flatMap((element) =>
    [...element.attributes].map((attribute) => `${element.tagName.toLowerCase()}[${attribute.name}=${attribute.value}]`),
  );
}

describe("renderMarkdown", () => {
  it("renders GitHub-flavoured Markdown: headings, lists, tables, code, emphasis, strikethrough", () => {
    const root = dom(
      [
        "# Harvest",
        "",
        "| Fruit | Count |",
        "|:------|------:|",
        "| Pears | **42** |",
        "",
        "1. first",
        "2. second",
        "",
        "- one",
        "- ~~two~~ `inline`",
        "",
        "```python",
        "print(42)",
        "```",
      ].join("\n"),
    );
    // The answer's own headings sit below the screen's (h1 title, h2 panels).
    expect(root.querySelector("h3")?.textContent).toBe("Harvest");
    expect(root.querySelector("h1, h2")).toBeNull();
    const table = root.querySelector(".table-wrap > table");
    expect(table).not.toBeNull();
    expect([...table!.querySelectorAll("th")].map((cell) => cell.textContent)).toEqual(["Fruit", "Count"]);
    expect(table!.querySelector("td strong")?.textContent).toBe("42");
    expect(table!.querySelector("th")?.getAttribute("align")).toBe("left");
    expect([...root.querySelectorAll("ol > li")].map((item) => item.textContent)).toEqual(["first", "second"]);
    expect(root.querySelectorAll("ul > li")).toHaveLength(2);
    expect(root.querySelector("ul del")?.textContent).toBe("two");
    expect(root.querySelector("ul code")?.textContent).toBe("inline");
    const code = root.querySelector(".code-block pre > code");
    expect(code?.textContent).toBe("print(42)");
    expect(code?.className).toContain("language-python");
    expect(root.querySelector(".code-block .code-language")?.textContent).toBe("python");
    expect(root.querySelector(".code-block button[data-copy-code]")?.textContent).toBe("Copy code");
  });

  it("renders task lists as read-only checkboxes with a name", () => {
    const root = dom("- [x] pick pears\n- [ ] sell them");
    const boxes = [...root.querySelectorAll("input")];
    expect(boxes.map((box) => [box.type, box.disabled, box.checked, box.getAttribute("aria-label")])).toEqual([
      ["checkbox", true, true, "done"],
      ["checkbox", true, false, "not done"],
    ]);
  });

  it("keeps a single line break (models write them) and paragraphs", () => {
    const root = dom("line one\nline two\n\nnext");
    expect(root.querySelectorAll("p")).toHaveLength(2);
    expect(root.querySelector("p br")).not.toBeNull();
  });

  it("shows raw HTML from the model as text, never as elements", () => {
    const hostile = [
      "<script>alert(1)</script>",
      '<img src=x onerror="alert(1)">',
      '<a href="javascript:alert(1)">x</a>',
      "<iframe src=https://evil.example></iframe>",
      "<style>body{display:none}</style>",
      '<div onmouseover="alert(1)">hover</div>',
      "<svg><script>alert(1)</script></svg>",
      "Inline <b onclick=alert(1)>bold</b> and <form action=https://evil.example><input name=x></form>",
    ].join("\n\n");
    const root = dom(hostile);
    expect(root.querySelector("script, img, iframe, style, svg, form, b, [onclick], [onerror], [onmouseover]")).toBeNull();
    expect(root.querySelector("input")).toBeNull();
    expect(root.textContent).toContain("<script>alert(1)</script>");
    expect(root.textContent).toContain('<img src=x onerror="alert(1)">');
    expect(attributes(root).filter((attribute) => /\[on|javascript/i.test(attribute))).toEqual([]);
  });

  it("keeps only http(s) and mailto links, opening them safely in a new tab", () => {
    const root = dom(
      [
        "[site](https://example.org/a?b=1&c=2) [mail](mailto:someone@example.org) <https://auto.example>",
        "www.bare.example",
        "[js](javascript:alert(1)) [JS](JaVaScRiPt:alert(1)) [spaced]( javascript:alert(1)) [entity](&#106;avascript:alert(1))",
        "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==) [vb](vbscript:msgbox(1)) [file](file:///etc/passwd)",
        "[relative](/api/conversation/list) [tab](java\tscript:alert(1)) <javascript:alert(1)>",
        '[titled](https://example.org "a \\"title\\"")',
      ].join("\n\n"),
    );
    const links = [...root.querySelectorAll("a[href]")];
    expect(links.map((link) => link.getAttribute("href"))).toEqual([
      "https://example.org/a?b=1&c=2",
      "mailto:someone@example.org",
      "https://auto.example",
      "http://www.bare.example",
      "https://example.org",
    ]);
    for (const link of links) {
      expect(link.getAttribute("target")).toBe("_blank");
      expect(link.getAttribute("rel")).toBe("noopener noreferrer");
    }
    // The refused links keep their text.
    for (const text of ["js", "JS", "spaced", "entity", "data", "vb", "file", "relative", "tab"]) expect(root.textContent).toContain(text);
    expect(attributes(root).filter((attribute) => /javascript|data:|vbscript|file:/i.test(attribute))).toEqual([]);
  });

  it("turns images into links (nothing is loaded from elsewhere)", () => {
    const root = dom("![a chart](https://example.org/chart.png) ![x](javascript:alert(1)) ![tracker](http://evil.example/p.gif)");
    expect(root.querySelector("img")).toBeNull();
    expect([...root.querySelectorAll("a")].map((link) => [link.textContent, link.getAttribute("href")])).toEqual([
      ["a chart", "https://example.org/chart.png"],
      ["tracker", "http://evil.example/p.gif"],
    ]);
  });

  it("escapes code, highlighted or not", () => {
    const markdown = "```html\n<script>alert(1)</script>\n```\n\n```unknownlang\n<img src=x onerror=alert(1)>\n```";
    for (const highlighter of [null, highlight]) {
      const root = dom(markdown, { highlight: highlighter });
      expect(root.querySelector("script, img")).toBeNull();
      expect([...root.querySelectorAll("pre code")].map((code) => code.textContent)).toEqual([
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
      ]);
    }
  });

  it("highlights registered languages (by name or alias) and leaves others plain", () => {
    const root = dom("```py\ndef f():\n    return 42\n```\n\n```cobol\nDISPLAY 'HI'.\n```\n\n```\nno language\n```", { highlight });
    const [python, cobol, none] = [...root.querySelectorAll("pre code")];
    expect(python.querySelector(".hljs-keyword")?.textContent).toBe("def");
    expect(python.textContent).toBe("def f():\n    return 42");
    expect(cobol.querySelector("span")).toBeNull();
    expect(none.querySelector("span")).toBeNull();
    expect(root.querySelectorAll(".code-language")[2].textContent).toBe("");
  });

  it("does not let a code block's language name inject attributes", () => {
    const root = dom('```x"onmouseover="alert(1)\ncode\n```', { highlight });
    expect(attributes(root).filter((attribute) => /onmouseover/.test(attribute))).toEqual([]);
  });

  it("copes with huge and pathological inputs quickly", () => {
    const cases = [
      "word ".repeat(200_000 / 5 - 1),
      "[".repeat(100_000),
      "*a".repeat(50_000),
      "> ".repeat(5_000) + "deep",
      "`".repeat(100_000),
      "- ".repeat(2_000) + "x",
      "| a |\n|---|\n" + "| b |\n".repeat(20_000),
      "[[a0]]".repeat(20_000),
      "<".repeat(100_000),
      "_".repeat(50_000) + "a" + "_".repeat(50_000),
    ];
    for (const markdown of cases) {
      const started = performance.now();
      const html = renderMarkdown(markdown, { labels, citations: numberCitations(markdown, [source(0, "Only")]) });
      const elapsed = performance.now() - started;
      expect(typeof html).toBe("string");
      expect(elapsed, `${markdown.slice(0, 20)}… took ${elapsed} ms`).toBeLessThan(2_000);
      const splitStarted = performance.now();
      splitBlocks(markdown);
      expect(performance.now() - splitStarted, `splitting ${markdown.slice(0, 20)}…`).toBeLessThan(1_000);
    }
  });

  it("shows a block too long for inline Markdown as plain text, but keeps a long code block", () => {
    const paragraph = "*a".repeat(MAX_BLOCK_CHARS);
    const code = "```\n" + "x = 1\n".repeat(MAX_BLOCK_CHARS / 4) + "```";
    const root = dom(`Short *one*.\n\n${paragraph}\n\n${code}`);
    expect(root.querySelector("p em")?.textContent).toBe("one");
    expect(root.querySelector("p.plain")?.textContent).toBe(paragraph);
    expect(root.querySelector("pre code")?.textContent?.length).toBe(code.length - 8);
  });

  it("shows an answer too long for Markdown as plain text", () => {
    const markdown = "<script>x</script> **bold** ".repeat(Math.ceil((MAX_MARKDOWN_CHARS + 1) / 27));
    const root = dom(markdown);
    expect(root.children).toHaveLength(1);
    expect(root.querySelector("pre")?.textContent).toBe(markdown);
    expect(root.querySelector("strong, script")).toBeNull();
  });
});

describe("citations inside Markdown", () => {
  const sources = [source(0, "Orchard"), source(1, "Boats")];
  const render = (markdown: string) => dom(markdown, { citations: numberCitations(markdown, sources) });

  it("become numbered buttons wherever text may be: paragraphs, lists, tables, headings, emphasis", () => {
    const markdown = [
      "## Trees [[a1]]",
      "",
      "The orchard has 42 trees [[a0]].",
      "",
      "- planted in 2019 [[a0]]",
      "",
      "| Place | Source |",
      "|---|---|",
      "| shed | **[[a1]]** |",
    ].join("\n");
    const root = render(markdown);
    const buttons = [...root.querySelectorAll("button.citation")];
    expect(buttons.map((button) => [button.closest("h4, p, li, td")?.tagName, button.getAttribute("data-cite"), button.textContent])).toEqual([
      ["H4", "a1", "[1]"],
      ["P", "a0", "[2]"],
      ["LI", "a0", "[2]"],
      ["TD", "a1", "[1]"],
    ]);
    expect(buttons[0].getAttribute("aria-label")).toBe("Source 1: Boats");
    expect(buttons.every((button) => button.getAttribute("type") === "button")).toBe(true);
  });

  it("stay text when their source is unknown, and inside code", () => {
    const root = render("See [[a9]] and `[[a0]]`.\n\n```\n[[a0]]\n```");
    expect(root.querySelector("button.citation")).toBeNull();
    expect(root.textContent).toContain("See [[a9]]");
    expect([...root.querySelectorAll("code")].map((code) => code.textContent)).toEqual(["[[a0]]", "[[a0]]"]);
  });

  it("are plain numbers inside a link's text (no control inside a link)", () => {
    const root = render("[the orchard [[a0]]](https://example.org) and [[a0]]");
    expect(root.querySelector("a button")).toBeNull();
    expect(root.querySelector("a")?.textContent).toBe("the orchard [1]");
    expect(root.querySelectorAll("button.citation")).toHaveLength(1);
  });

  it("cannot be forged by the model with raw HTML", () => {
    const root = render('<button class="citation" data-cite="a0" onclick="alert(1)">[1]</button>');
    expect(root.querySelector("button")).toBeNull();
  });
});

describe("splitBlocks", () => {
  it("cuts an answer into its top-level blocks, which render as the whole does", () => {
    const markdown = "Intro line\nsecond line\n\n- a\n- b\n\n| x |\n|---|\n| 1 |\n\n```js\nlet a = 1;\n\nlet b = 2;\n```\n\nEnd [[a0]].";
    const blocks = splitBlocks(markdown);
    expect(blocks).toHaveLength(5);
    expect(blocks[3]).toContain("let b = 2;");
    const citations = numberCitations(markdown, [source(0, "Only")]);
    const whole = renderMarkdown(markdown, { labels, citations }).replace(/\s+/g, "");
    const pieces = blocks.map((block) => renderMarkdown(block, { labels, citations })).join("").replace(/\s+/g, "");
    expect(pieces).toBe(whole);
  });

  it("keeps finished blocks unchanged while the last one grows (streaming)", () => {
    const answer = "First paragraph.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nThe third block is being writ";
    const before = splitBlocks(answer);
    const after = splitBlocks(`${answer}ten, and more.\n\n- next`);
    expect(after.slice(0, 2)).toEqual(before.slice(0, 2));
    expect(after).toHaveLength(4);
  });

  it("gives reference definitions to the blocks that use them", () => {
    const blocks = splitBlocks("See [the docs][d].\n\nMore.\n\n[d]: https://example.org/docs");
    expect(blocks).toHaveLength(2);
    const root = document.createElement("div");
    root.innerHTML = blocks.map((block) => renderMarkdown(block, { labels })).join("");
    expect(root.querySelector("a")?.getAttribute("href")).toBe("https://example.org/docs");
    expect(root.textContent).not.toContain("[d]:");
  });

  it("is one block for an answer too long for Markdown", () => {
    expect(splitBlocks("x\n\n".repeat(MAX_MARKDOWN_CHARS))).toHaveLength(1);
  });
});

describe("markdownToPlainText", () => {
  it("keeps the words, one block a line, without syntax, citations or code labels", () => {
    const text = markdownToPlainText(
      "## Trees\n\nThe **Larkspur** orchard [[a0]]:\n\n| Fruit | Count |\n|---|---|\n| Pears | 42 |\n\n- one\n- two\n\n```python\nprint(42)\n```\n\n<b>raw</b>",
    );
    expect(text).toBe("Trees\nThe Larkspur orchard :\nFruit Count\nPears 42\none\ntwo\nprint(42)\n<b>raw</b>");
  });
});

describe("helpers", () => {
  it("safeHref keeps only http(s) and mailto", () => {
    expect(safeHref(" https://a.example ")).toBe("https://a.example");
    expect(safeHref("MAILTO:x@y.example")).toBe("MAILTO:x@y.example");
    for (const href of ["javascript:alert(1)", "data:text/html,x", "/relative", "#top", "http:/x", "https://a b", "", null]) {
      expect(safeHref(href)).toBeNull();
    }
  });

  it("hasCodeBlock finds fenced and indented code", () => {
    expect(hasCodeBlock("text\n```js\nx\n```")).toBe(true);
    expect(hasCodeBlock("text\n~~~\nx\n~~~")).toBe(true);
    expect(hasCodeBlock("text\n\n    indented")).toBe(true);
    expect(hasCodeBlock("just `inline` code")).toBe(false);
  });
});
