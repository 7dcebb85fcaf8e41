// Browser end-to-end test of the UI against a real Nexent Local server, with Debian's Chromium driven by
// playwright-core. Run by tests/e2e/ui.rs, which starts the server:
//
//   node e2e/run.mjs BASE_URL SCREENSHOT_DIR [MICROPHONE_WAV]
//
// It walks what a person does: create a knowledge base, upload two documents, watch them reach
// COMPLETED, ask a question in chat, see the steps stream and an answer whose citation opens the right
// source, like it, dictate a question (the fake microphone plays MICROPHONE_WAV) and hear an answer read
// aloud, rename and delete the conversation; attach a file to a question; get answers the model writes in
// Markdown (a list holding a citation; a table, lists and a fenced code block) rendered as such, copy an
// answer and a code block, export the conversation as Markdown and JSON, regenerate an answer, use the
// keyboard shortcuts, see the dark theme; add a remote model and check it; change a setting. Every screen is
// screenshotted and checked with axe (no serious or critical violation). Then the language is switched to
// Chinese in Settings and the main screens are shown again (screenshots `zh-*.png`, the same axe check, no
// English text of the UI left).
// Any failed expectation throws: the exit status is the verdict.

import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const [base, shots, microphone] = process.argv.slice(2);
if (!base || !shots) {
  console.error("usage: node e2e/run.mjs BASE_URL SCREENSHOT_DIR");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const timeout = 120_000;

function expect(condition, message) {
  if (!condition) throw new Error(`expectation failed: ${message}`);
}

async function accessibility(page, name) {
  // Through the DevTools protocol, not a <script> tag: the UI's content security policy (rightly) refuses
  // inline scripts, and axe is the test's, not the page's.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const report = await axe.run(document, { resultTypes: ["violations"] });
    return report.violations.map((violation) => ({ id: violation.id, impact: violation.impact, nodes: violation.nodes.length, help: violation.help }));
  });
  const serious = result.filter((violation) => violation.impact === "serious" || violation.impact === "critical");
  console.log(`axe ${name}: ${result.length} violation kinds, ${serious.length} serious or critical`);
  expect(serious.length === 0, `${name}: ${JSON.stringify(serious)}`);
}

async function screenshot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: false });
}

/** The screen shows none of these texts of the English UI (for the Chinese pass: no mixed screens). */
async function noEnglish(page, name, phrases) {
  const text = await page.locator("body").innerText();
  const found = phrases.filter((phrase) => text.includes(phrase));
  expect(found.length === 0, `${name} is in Chinese, yet shows: ${found.join(" | ")}`);
}

/** Waits until `check` (run in the page, may be async) is true, asking four times a second. */
async function until(page, check, limit = 30_000) {
  const started = Date.now();
  while (!(await page.evaluate(check))) {
    if (Date.now() - started > limit) throw new Error(`expectation failed: timed out waiting for ${check}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Whether a conversation still has Nexent's default title ("新对话", kept as is on the server). */
async function hasDefaultTitle(page) {
  return page.evaluate(async () =>
    (await (await fetch("/api/conversation/list")).json()).data.some((item) => item.conversation_title === "新对话"),
  );
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    ...(microphone ? [`--use-file-for-fake-audio-capture=${microphone}`] : []),
    "--autoplay-policy=no-user-gesture-required",
  ],
});
try {
  // An English browser: the UI follows the browser's language until one is chosen in Settings.
  // Copy buttons write to the clipboard, which the test reads back.
  const page = await browser.newPage({
    viewport: { width: 1400, height: 900 },
    locale: "en-US",
    permissions: ["clipboard-read", "clipboard-write"],
  });
  page.setDefaultTimeout(timeout);
  page.on("pageerror", (error) => console.error("page error:", error.message));
  const policyViolations = [];
  page.on("console", (message) => {
    if (message.type() === "error") console.error("console:", message.text());
    if (message.text().includes("Content Security Policy")) policyViolations.push(message.text());
  });

  // Knowledge bases: empty state, then a base with two documents.
  await page.goto(`${base}/#/knowledge`);
  await page.getByText("No knowledge bases yet").waitFor();
  await accessibility(page, "knowledge (empty)");
  await page.getByLabel("New knowledge base").fill("garden");
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { name: "garden" }).waitFor();
  await page.getByLabel(/Upload documents/).setInputFiles([
    {
      name: "larkspur-orchard.txt",
      mimeType: "text/plain",
      buffer: Buffer.from(
        "The Larkspur orchard\n\nThe Larkspur orchard grows 42 pear trees. Ines Okafor planted them in 2019 on the " +
          "south slope, and the harvest is sold at the Saturday market in Tellwick.",
      ),
    },
    {
      name: "boat-repairs.txt",
      mimeType: "text/plain",
      buffer: Buffer.from(
        "Boat repairs\n\nThe harbour workshop repaints hulls every April. Marco Basile keeps the varnish in shed " +
          "number three, next to the spare oars.",
      ),
    },
  ]);
  // Both files reach COMPLETED (the list polls their tasks).
  await page.waitForFunction(
    () => {
      const statuses = [...document.querySelectorAll('[data-testid="file-status"]')].map((node) => node.textContent);
      return statuses.length === 2 && statuses.every((status) => status === "COMPLETED");
    },
    null,
    { timeout },
  );
  // A watched folder: its file is indexed into the same base.
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const folder = mkdtempSync(`${tmpdir()}/nexent-watch-`);
  writeFileSync(`${folder}/tide-table.txt`, "Tide table\n\nHigh tide at Tellwick harbour is at 06:40 on Sunday.");
  await page.getByLabel("Folder to watch (absolute path)").fill(folder);
  await page.getByRole("button", { name: "Watch", exact: true }).click();
  await page.getByText(folder).waitFor();
  await page.waitForFunction(
    () => [...document.querySelectorAll(".files tr")].some((row) => row.textContent?.includes("tide-table.txt") && row.textContent?.includes("COMPLETED")),
    null,
    { timeout },
  );
  await page.getByRole("button", { name: `Stop watching ${folder}` }).click();
  await page.getByText(folder).waitFor({ state: "detached" });
  await page.getByLabel("Search it in chat").check();
  await page.getByLabel("Query").fill("pear trees");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.locator(".hits li", { hasText: "42 pear trees" }).first().waitFor();
  await screenshot(page, "knowledge");
  await accessibility(page, "knowledge");

  // Chat: ask, watch the steps stream, follow the citation.
  await page.getByRole("link", { name: "Chat" }).click();
  await page.getByText("Ask a question about your documents").waitFor();
  await screenshot(page, "chat-empty");
  await accessibility(page, "chat (empty)");
  const question = page.getByLabel("Your question");
  await question.fill("How many pear trees does the Larkspur orchard grow?");
  await question.press("Enter");
  // A step appears while the run is going (the stop button is shown until it ends).
  await page.locator(".step").first().waitFor();
  await page.getByRole("button", { name: "Stop" }).waitFor();
  await screenshot(page, "chat-streaming");
  await page.locator(".answer").waitFor({ timeout });
  await page.getByRole("button", { name: /Like/ }).waitFor({ timeout });
  const answer = await page.locator(".answer").innerText();
  console.log(`answer: ${answer}`);
  expect(/42/.test(answer), `the answer gives the number: ${answer}`);
  const citation = page.locator(".citation").first();
  await citation.waitFor();
  await citation.click();
  const highlighted = page.locator(".source.highlighted");
  await highlighted.waitFor();
  const sourceText = await highlighted.innerText();
  expect(/Larkspur/.test(sourceText), `the cited source is the orchard document: ${sourceText}`);
  const like = page.getByRole("button", { name: /Like/ });
  await like.click();
  await page.waitForFunction(() => document.querySelector('.opinion button[aria-pressed="true"]')?.textContent?.includes("Like"));
  await screenshot(page, "chat-answer");
  await accessibility(page, "chat (answer)");

  // Read aloud: the answer is spoken with the local voice (playback starts, then ends).
  await page.getByRole("button", { name: /Read aloud/ }).first().click();
  await page.getByRole("button", { name: /Speaking/ }).waitFor();
  await page.getByRole("button", { name: /Read aloud/ }).first().waitFor({ timeout });

  // Dictation: the fake microphone plays the test recording; its words land in the question box.
  if (microphone) {
    await page.getByRole("button", { name: "Dictate" }).click();
    await page.waitForFunction(() => /country/i.test(document.querySelector("textarea")?.value ?? ""), null, { timeout: 60_000 });
    await page.getByRole("button", { name: "Stop dictation" }).click();
    await page.getByRole("button", { name: "Dictate" }).waitFor();
    const dictated = await page.getByLabel("Your question").inputValue();
    console.log(`dictated: ${dictated}`);
    expect(/fellow american/i.test(dictated) && /country/i.test(dictated), `the recording was transcribed: ${dictated}`);
    await screenshot(page, "chat-dictation");
    await page.getByLabel("Your question").fill("");
  }

  // The keyboard reaches the question box from the top of the page.
  await page.locator("body").focus();
  let reached = false;
  for (let press = 0; press < 40 && !reached; press += 1) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement?.tagName === "TEXTAREA");
  }
  expect(reached, "Tab reaches the question box");

  // The like survives a reload (it was saved).
  await page.reload();
  await page.locator(".conversations button.title").first().click();
  await page.waitForFunction(() => document.querySelector('.opinion button[aria-pressed="true"]')?.textContent?.includes("Like"));

  // Rename and delete the conversation, from the keyboard.
  const first = page.locator(".conversations li").first();
  await first.getByRole("button", { name: /^Rename/ }).click();
  const title = page.getByLabel("New title");
  await title.fill("Orchard questions");
  await title.press("Enter");
  await page.getByRole("button", { name: "Orchard questions", exact: true }).waitFor();
  await page.getByLabel("Search conversations").fill("orchard");
  await page.getByRole("button", { name: "Orchard questions", exact: true }).waitFor();
  await page.getByRole("button", { name: "Delete Orchard questions" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  await accessibility(page, "delete dialog");
  await screenshot(page, "chat-delete-dialog");
  // The dialog's confirm button has the focus: Enter confirms.
  await page.keyboard.press("Enter");
  await dialog.waitFor({ state: "detached" });
  await page.getByLabel("Search conversations").fill("");
  await page.getByText("No conversations yet").waitFor();
  // An attachment: stored, read (preprocess), and handed to the agent with the question.
  await page.getByLabel("Attach files").setInputFiles([
    {
      name: "launch-notes.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("Launch notes\n\nThe launch meeting is on Thursday at 3 pm in the Kepler room."),
    },
  ]);
  await page.waitForFunction(() => document.querySelector('[data-testid="attachment-status"]')?.textContent?.startsWith("ready"), null, { timeout });
  await page.getByLabel("Your question").fill("When is the launch meeting?");
  await page.getByLabel("Your question").press("Enter");
  await page.getByRole("button", { name: /Like/ }).waitFor({ timeout });
  await screenshot(page, "chat-attachment");
  const savedFiles = await page.evaluate(async () => {
    const list = (await (await fetch("/api/conversation/list")).json()).data;
    const [history] = (await (await fetch(`/api/conversation/${list[0].conversation_id}`)).json()).data;
    return history.message.find((message) => message.role === "user")?.minio_files ?? [];
  });
  expect(savedFiles.some((file) => file.name === "launch-notes.txt" && /Kepler/.test(file.description ?? "")),
    `the question was saved with its attachment: ${JSON.stringify(savedFiles)}`);
  // Nexent's default title "新对话" stays so on the server; the English screen shows it in English.
  if (await hasDefaultTitle(page)) {
    await page.getByRole("button", { name: "New conversation", exact: true }).waitFor();
    const shown = await page.locator("body").innerText();
    expect(!shown.includes("新对话"), "the English screen shows the default title in English");
  }

  // Markdown (issue 20). The answers are the local model's own: at temperature 0 it writes the same text for
  // the same question, and these two questions get a list with a citation and a table, lists and code.
  // Ctrl+Shift+O starts a new chat with the cursor in the question box.
  await page.keyboard.press("Control+Shift+O");
  await page.getByText("Ask a question about your documents").waitFor();
  expect(await page.evaluate(() => document.activeElement?.tagName === "TEXTAREA"), "Ctrl+Shift+O focuses the question box");
  // `/` goes to the question box from anywhere else (and is not typed into it).
  await page.evaluate(() => (document.activeElement instanceof HTMLElement ? document.activeElement.blur() : undefined));
  await page.keyboard.press("/");
  expect(await page.evaluate(() => document.activeElement?.tagName === "TEXTAREA"), "/ focuses the question box");
  expect((await page.getByLabel("Your question").inputValue()) === "", "/ is not typed into the question box");

  // With the garden base searched, the answer is a Markdown list whose last item carries the citation.
  await page.keyboard.type("Make a Markdown table of the Larkspur orchard (columns: Trees, Planted by, Year), a bullet list, and a python code block.");
  await page.keyboard.press("Enter");
  await page.getByRole("button", { name: /Like/ }).waitFor({ timeout });
  const listAnswer = page.locator(".answer").last();
  console.log(`list answer: ${await listAnswer.innerText()}`);
  expect((await listAnswer.locator("ul > li").count()) >= 2, `the answer's list is a <ul>: ${await listAnswer.innerHTML()}`);
  const citedItem = listAnswer.locator("li .citation, td .citation").first();
  await citedItem.waitFor();
  await citedItem.click();
  const citedSource = await page.locator(".source.highlighted").innerText();
  expect(/Larkspur/.test(citedSource), `the citation inside the list opens the orchard document: ${citedSource}`);
  await screenshot(page, "chat-markdown-citation");
  expect((await listAnswer.innerText()).includes("[[") === false, "no citation mark is left as text");
  // Copy: the answer as Markdown, its citation as a number and the source after it.
  await page.getByRole("button", { name: "Copy", exact: true }).click();
  await page.getByRole("button", { name: "Copied", exact: true }).waitFor();
  const copiedAnswer = await page.evaluate(() => navigator.clipboard.readText());
  console.log(`copied: ${JSON.stringify(copiedAnswer)}`);
  expect(/^- .*\[1\]$/m.test(copiedAnswer) && /Sources:\n\n1\. larkspur-orchard/.test(copiedAnswer) && !copiedAnswer.includes("[[a"),
    `the copied answer is Markdown with its citation numbered and its source listed: ${copiedAnswer}`);

  // Without a base, the model writes a table, an ordered and a bulleted list and a fenced code block.
  await page.getByRole("link", { name: "Knowledge bases" }).click();
  await page.locator(".bases button.title", { hasText: "garden" }).click();
  await page.getByLabel("Search it in chat").uncheck();
  await until(page, async () => (await (await fetch("/api/config/load_config")).json()).config.data.selectedKbNames.length === 0);
  await page.getByRole("link", { name: "Chat" }).click();
  await page.getByRole("button", { name: "New chat" }).click();
  const markdownQuestion =
    "Give three things in Markdown: 1) a table of pears (42) and apples (7) with columns Fruit and Count, 2) a bulleted " +
    "list naming both fruits, 3) Python code in a fenced block that prints the total.";
  await page.getByLabel("Your question").fill(markdownQuestion);
  // While the step's text streams in, finished Markdown blocks keep their DOM: only the block a token lands
  // in is written. A MutationObserver counts every rewrite of a block and whether it was the last block then.
  await page.evaluate(() => {
    const writes = (window.blockWrites = { last: 0, finished: 0 });
    window.blockObserver = new MutationObserver((mutations) => {
      for (const mutation of mutations) {
        const block = mutation.target;
        if (!(block instanceof Element) || !block.matches(".step .markdown-block")) continue;
        if (block.nextElementSibling) writes.finished += 1;
        else writes.last += 1;
      }
    });
    window.blockObserver.observe(document.querySelector(".turns"), { childList: true, subtree: true });
  });
  const runResponse = page.waitForResponse((response) => response.url().endsWith("/api/agent/run"));
  await page.getByLabel("Your question").press("Enter");
  await page.getByRole("button", { name: /Like/ }).waitFor({ timeout });
  const streamed = ((await (await runResponse).text()).match(/"type":"model_output_thinking"/g) ?? []).length;
  const blockWrites = await page.evaluate(() => {
    window.blockObserver.disconnect();
    return { ...window.blockWrites, blocks: document.querySelectorAll(".turn:last-child .step .markdown-block").length };
  });
  console.log(`streaming: ${streamed} text messages into ${blockWrites.blocks} blocks; the last block rewritten ` +
    `${blockWrites.last} times, finished blocks ${blockWrites.finished} times`);
  expect(streamed > 20 && blockWrites.blocks >= 5, "the step's text streamed into several blocks");
  expect(blockWrites.finished <= blockWrites.blocks, "finished blocks are not rewritten while the text streams");
  const markdownAnswer = page.locator(".answer").last();
  console.log(`markdown answer: ${await markdownAnswer.innerText()}`);
  const rendered = await markdownAnswer.evaluate((answer) => ({
    headers: [...answer.querySelectorAll("table th")].map((cell) => cell.textContent?.trim()),
    cells: [...answer.querySelectorAll("table td")].map((cell) => cell.textContent?.trim()),
    bullets: [...answer.querySelectorAll("ul > li")].map((item) => item.textContent?.trim()),
    numbered: answer.querySelectorAll("ol > li").length,
    code: answer.querySelector("pre > code.language-python")?.textContent ?? null,
    rawMarks: /\|\s*-{3,}|```|^\s*- /m.test(answer.textContent ?? ""),
  }));
  console.log(`rendered: ${JSON.stringify(rendered)}`);
  expect(rendered.headers.join() === "Fruit,Count", `a <table> with the header row: ${JSON.stringify(rendered)}`);
  expect(rendered.cells.includes("Pears") && rendered.cells.includes("42"), "the table's cells");
  expect(rendered.bullets.join() === "Pears,Apples", "a <ul> of the two fruits");
  expect(rendered.numbered >= 1, "an <ol> for the numbered parts");
  expect(/print\(/.test(rendered.code ?? ""), "a <pre><code> block of Python");
  expect(!rendered.rawMarks, "no Markdown syntax is left as text");
  // The highlighter arrives (its own chunk) and marks the code up.
  await markdownAnswer.locator("pre code .hljs-built_in, pre code .hljs-number").first().waitFor();
  // A code block's copy button copies exactly its code.
  await markdownAnswer.getByRole("button", { name: "Copy code" }).click();
  await markdownAnswer.getByRole("button", { name: "Copied" }).waitFor();
  const copiedCode = await page.evaluate(() => navigator.clipboard.readText());
  expect(copiedCode === rendered.code, `the code block's text was copied: ${JSON.stringify(copiedCode)}`);
  await markdownAnswer.locator("table").scrollIntoViewIfNeeded();
  await screenshot(page, "chat-markdown");
  await accessibility(page, "chat (markdown)");

  // Export: the conversation as Markdown and as JSON, downloaded.
  const exported = async (name) => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name }).click()]);
    return { name: download.suggestedFilename(), text: readFileSync(await download.path(), "utf8") };
  };
  const markdownFile = await exported("Export Markdown");
  console.log(`exported ${markdownFile.name}:\n${markdownFile.text}`);
  expect(markdownFile.name.endsWith(".md"), `a .md file: ${markdownFile.name}`);
  expect(markdownFile.text.includes(`## You\n\n${markdownQuestion}`) && markdownFile.text.includes("## Assistant") &&
    /\| Pears +\| 42 +\|/.test(markdownFile.text) && markdownFile.text.includes("```python\n") && markdownFile.text.includes("print(total)"),
    "the Markdown export holds the question and the answer's Markdown");
  const jsonFile = await exported("Export JSON");
  expect(jsonFile.name.endsWith(".json"), `a .json file: ${jsonFile.name}`);
  const exportedJson = JSON.parse(jsonFile.text);
  expect(exportedJson.format === "nexent-local.conversation" && exportedJson.messages.length === 2, `the JSON export: ${jsonFile.text}`);
  expect(exportedJson.messages[0].role === "user" && exportedJson.messages[0].content === markdownQuestion, "the JSON export's question");
  expect(exportedJson.messages[1].role === "assistant" && exportedJson.messages[1].content.includes("| Fruit | Count |") &&
    typeof exportedJson.messages[1].message_id === "number", "the JSON export's answer, as the model wrote it");

  // Regenerate asks the same question again in a new turn; Esc stops it.
  await page.getByRole("button", { name: "Regenerate", exact: true }).click();
  await page.getByRole("button", { name: "Stop" }).waitFor();
  expect((await page.locator(".turn .question").allInnerTexts()).every((text) => text === markdownQuestion), "the question is asked again");
  expect((await page.locator(".turn").count()) === 2, "regenerating adds a turn");
  const stopRequest = page.waitForRequest((request) => request.url().includes("/api/agent/stop/"));
  await page.keyboard.press("Escape");
  await stopRequest;
  await page.getByRole("button", { name: "Send" }).waitFor({ timeout });

  // The dark theme follows the system's: the same conversation, dark, still readable (axe checks contrast).
  await page.emulateMedia({ colorScheme: "dark" });
  await markdownAnswer.locator("table").scrollIntoViewIfNeeded();
  const background = await page.evaluate(() => getComputedStyle(document.querySelector(".conversation")).backgroundColor);
  expect(background === "rgb(23, 29, 38)", `the dark theme's panel colour: ${background}`);
  await screenshot(page, "dark-chat");
  await accessibility(page, "chat (dark)");
  await page.getByRole("link", { name: "Knowledge bases" }).click();
  await page.locator(".bases button.title", { hasText: "garden" }).click();
  await page.getByLabel("Search it in chat").check();
  await until(page, async () => (await (await fetch("/api/config/load_config")).json()).config.data.selectedKbNames.includes("garden"));
  await screenshot(page, "dark-knowledge");
  await accessibility(page, "knowledge (dark)");
  await page.emulateMedia({ colorScheme: "light" });

  // Models: add a remote model that is down, check it (red), check the local embedder (green).
  await page.getByRole("link", { name: "Models" }).click();
  await page.getByRole("heading", { name: "Models" }).waitFor();
  await page.getByRole("button", { name: "Add a remote model" }).click();
  await page.getByLabel("Model name (as the server knows it)").fill("Pro/Qwen/Qwen2-7B");
  await page.getByLabel("Display name").fill("Remote Qwen");
  await page.getByLabel("Base URL (OpenAI-compatible, ending in /v1)").fill("http://127.0.0.1:9/v1");
  await accessibility(page, "add model dialog");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("button", { name: "Check Remote Qwen" }).click();
  await page.waitForFunction(() =>
    [...document.querySelectorAll("tr")].some((row) => row.textContent?.includes("Remote Qwen") && row.querySelector(".status-unavailable")),
  );
  await page.getByRole("button", { name: "Check all-MiniLM-L6-v2" }).click();
  await page.waitForFunction(() =>
    [...document.querySelectorAll("tr")].some((row) => row.textContent?.includes("all-MiniLM-L6-v2") && row.querySelector(".status-available")),
  );
  await screenshot(page, "models");
  await accessibility(page, "models");

  // Settings: the app's name is saved.
  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByLabel("App name").fill("Orchard Assistant");
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByText("Settings saved.").waitFor();
  await screenshot(page, "settings");
  await accessibility(page, "settings");
  const saved = await page.evaluate(async () => (await (await fetch("/api/config/load_config")).json()).config.app.appName);
  expect(saved === "Orchard Assistant", `the app name was saved: ${saved}`);

  // 中文: the language is chosen in Settings, applies to the whole page at once (and to <html lang>), and is
  // remembered across a reload.
  await page.getByLabel("Language / 语言").selectOption("zh");
  await page.getByRole("heading", { name: "设置", exact: true }).waitFor();
  await page.getByRole("link", { name: "对话", exact: true }).waitFor();
  expect((await page.evaluate(() => document.documentElement.lang)) === "zh-CN", "<html lang> is zh-CN");
  await page.reload();
  await page.getByRole("heading", { name: "设置", exact: true }).waitFor();
  expect((await page.getByLabel("Language / 语言").inputValue()) === "zh", "the language choice survives a reload");
  expect((await page.evaluate(() => document.documentElement.lang)) === "zh-CN", "<html lang> is zh-CN after a reload");

  // Chat in Chinese: the conversation with its answer.
  await page.getByRole("link", { name: "对话", exact: true }).click();
  await page.getByLabel("你的问题").waitFor();
  await page.locator(".conversations button.title").first().click();
  await page.locator(".answer").first().waitFor();
  await page.getByRole("button", { name: "点赞" }).first().waitFor();
  if (await hasDefaultTitle(page)) {
    await page.getByRole("button", { name: "新对话", exact: true }).first().waitFor();
  }
  await noEnglish(page, "chat (zh)", ["New chat", "Search conversations", "Your question", "Read aloud", "Regenerate title",
    "New conversation", "tool call", "Passages the assistant finds", "Copy", "Regenerate", "Export", "Keyboard shortcuts"]);
  await screenshot(page, "zh-chat");
  await accessibility(page, "chat (zh)");

  // Knowledge bases in Chinese: the base, its files (completed), a search.
  await page.getByRole("link", { name: "知识库", exact: true }).click();
  await page.locator(".bases button.title", { hasText: "garden" }).click();
  await page.getByRole("heading", { name: "garden" }).waitFor();
  await page.waitForFunction(
    () => {
      const statuses = [...document.querySelectorAll('[data-testid="file-status"]')].map((node) => node.textContent);
      return statuses.length >= 2 && statuses.every((status) => status === "已完成");
    },
    null,
    { timeout },
  );
  expect(await page.getByLabel("在对话中检索").isChecked(), "the base is still searched in chat");
  await page.getByLabel("检索内容").fill("pear trees");
  await page.getByRole("button", { name: "检索", exact: true }).click();
  await page.locator(".hits li", { hasText: "42 pear trees" }).first().waitFor();
  await noEnglish(page, "knowledge (zh)", ["New knowledge base", "Upload documents", "Watched folders", "Try a search",
    "Search it in chat", "COMPLETED", " chunks", "results in"]);
  await screenshot(page, "zh-knowledge");
  await accessibility(page, "knowledge (zh)");

  // Models in Chinese: the statuses checked above, in Chinese.
  await page.getByRole("link", { name: "模型", exact: true }).click();
  await page.getByRole("heading", { name: "模型", exact: true }).waitFor();
  await page.getByRole("button", { name: "检测 Remote Qwen" }).waitFor();
  const remoteStatus = await page.locator("tr", { hasText: "Remote Qwen" }).locator('[data-testid="model-status"]').innerText();
  expect(remoteStatus.trim() === "不可用", `the remote model's status is shown in Chinese: ${remoteStatus}`);
  await noEnglish(page, "models (zh)", ["Add a remote model", "Used for", "ModelEngine hub", "this machine", "unavailable"]);
  await screenshot(page, "zh-models");
  await accessibility(page, "models (zh)");

  // Settings in Chinese: the saved name, saved again.
  await page.getByRole("link", { name: "设置", exact: true }).click();
  await page.getByRole("heading", { name: "设置", exact: true }).waitFor();
  const appName = page.getByLabel("应用名称");
  await appName.waitFor();
  expect((await appName.inputValue()) === "Orchard Assistant", "the saved app name is shown");
  await page.getByRole("button", { name: "保存设置" }).click();
  await page.getByText("设置已保存。").waitFor();
  await noEnglish(page, "settings (zh)", ["App name", "Save settings", "Description", "Settings saved."]);
  await screenshot(page, "zh-settings");
  await accessibility(page, "settings (zh)");

  // A browser set to Chinese gets the Chinese UI from the start (a new context: no choice stored).
  const chineseBrowser = await browser.newPage({ viewport: { width: 1400, height: 900 }, locale: "zh-CN" });
  await chineseBrowser.goto(`${base}/#/knowledge`);
  await chineseBrowser.getByRole("link", { name: "知识库", exact: true }).waitFor();
  expect((await chineseBrowser.evaluate(() => document.documentElement.lang)) === "zh-CN", "a Chinese browser gets <html lang=zh-CN>");
  await chineseBrowser.close();

  // The app itself lives within its content security policy (no inline scripts, no foreign sources).
  expect(policyViolations.length === 0, `content security policy violations: ${policyViolations.join("; ")}`);
  console.log("ui e2e: all expectations held");
} catch (failure) {
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      await page.screenshot({ path: `${shots}/failure.png` }).catch(() => {});
      console.error("page text at the failure:\n" + (await page.locator("body").innerText().catch(() => "")));
    }
  }
  throw failure;
} finally {
  await browser.close();
}
