// Chat: the conversation list (new, rename, delete, search by title), a conversation's messages with the
// agent's steps streaming in, the answer as Markdown with citations linked to the sources panel,
// like/dislike, copy, regenerate, stop, a regenerated title, export (Markdown, JSON) and keyboard shortcuts.

import { memo, useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  ApiError,
  api,
  apiToken,
  conversations,
  describeAttachments,
  storeAttachments,
  type Attachment,
  type Conversation,
  type HistoryMessage,
} from "../api/client";
import {
  AgentStreamParser,
  applyMessage,
  emptyRun,
  runFromHistory,
  type AgentMessage,
  type AgentRun,
  type Source,
} from "../lib/agentStream";
import { numberCitations, sourceKey } from "../lib/citations";
import { copyText, downloadFile } from "../lib/clipboard";
import { answerMarkdown, conversationToJson, conversationToMarkdown, exportFileName, type ExportedConversation } from "../lib/conversationExport";
import { Markdown } from "../components/Markdown";
import { markdownToPlainText } from "../lib/markdown";
import {
  CopyIcon,
  DownloadIcon,
  MicIcon,
  PencilIcon,
  RegenerateIcon,
  SpeakerIcon,
  ThumbDownIcon,
  ThumbUpIcon,
  TrashIcon,
} from "../icons";
import { readAloud, startDictation, type Dictation } from "../lib/voice";
import { displayTitle, useLanguage, useT, type PlainKey, type Translate } from "../lib/i18n";

const ATTACHMENT_STATUS: Record<Exclude<Attachment["status"], "failed">, PlainKey> = {
  uploading: "chat.attachment.uploading",
  reading: "chat.attachment.reading",
  ready: "chat.attachment.ready",
};

interface Turn {
  question: string;
  run: AgentRun;
  messageId?: number;
  opinion?: "Y" | "N" | null;
  running: boolean;
}

function turnsFromHistory(messages: HistoryMessage[]): Turn[] {
  const turns: Turn[] = [];
  for (const message of messages) {
    if (message.role === "user") {
      turns.push({ question: typeof message.message === "string" ? message.message : "", run: emptyRun(), running: false });
    } else {
      const units = Array.isArray(message.message) ? message.message : [{ type: "final_answer", content: message.message }];
      const turn = turns[turns.length - 1] ?? { question: "", run: emptyRun(), running: false };
      if (turns.length === 0) turns.push(turn);
      turn.run = runFromHistory(units, message.search);
      turn.messageId = message.message_id;
      turn.opinion = message.opinion_flag ?? null;
    }
  }
  return turns;
}

/** The conversation so far as `{role, content}` turns (the agent's history and the title prompt). */
function historyOf(turns: Turn[]): { role: string; content: string }[] {
  return turns.flatMap((turn) => [
    { role: "user", content: turn.question },
    { role: "assistant", content: turn.run.answer },
  ]);
}

export function ChatScreen() {
  const t = useT();
  const language = useLanguage();
  const [list, setList] = useState<Conversation[]>([]);
  const [filter, setFilter] = useState("");
  const [selected, setSelected] = useState<number | null>(null);
  const [turns, setTurns] = useState<Turn[]>([]);
  const [question, setQuestion] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [highlighted, setHighlighted] = useState<string | null>(null);
  const [renaming, setRenaming] = useState<number | null>(null);
  const [confirmDelete, setConfirmDelete] = useState<Conversation | null>(null);
  const abort = useRef<AbortController | null>(null);
  const dictation = useRef<Dictation | null>(null);
  const [recording, setRecording] = useState(false);
  const [speaking, setSpeaking] = useState<number | null>(null);
  const [attachments, setAttachments] = useState<Attachment[]>([]);
  const [copied, setCopied] = useState<{ index: number; ok: boolean } | null>(null);
  const questionBox = useRef<HTMLTextAreaElement>(null);

  const refreshList = useCallback(async () => {
    try {
      setList(await conversations.list());
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, []);

  useEffect(() => {
    void refreshList();
  }, [refreshList]);

  const open = useCallback(async (id: number) => {
    abort.current?.abort();
    setSelected(id);
    setHighlighted(null);
    setError(null);
    try {
      const history = await conversations.history(id);
      setTurns(turnsFromHistory(history.message));
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, []);

  const running = turns.some((turn) => turn.running);
  const attaching = attachments.some((item) => item.status === "uploading" || item.status === "reading");

  const attach = async (list: FileList | null) => {
    const files = Array.from(list ?? []);
    if (files.length === 0) return;
    const first = attachments.length;
    setAttachments((previous) => [
      ...previous,
      ...files.map((file): Attachment => ({ name: file.name, size: file.size, type: file.type || "application/octet-stream", status: "uploading" })),
    ]);
    const set = (position: number, change: Partial<Attachment>) =>
      setAttachments((previous) => previous.map((item, index) => (index === first + position ? { ...item, ...change } : item)));
    try {
      const stored = await storeAttachments(files);
      stored.forEach((result, position) =>
        set(position, result.object_name ? { object_name: result.object_name, url: result.url, status: "reading" } : { status: "failed", error: result.error ?? t("chat.attachment.notStored") }),
      );
      await describeAttachments(files, question.trim() || t("chat.attachment.defaultQuery"), (event) => {
        const position = files.findIndex((file) => file.name === event.filename);
        if (event.type === "progress" && event.progress !== undefined) {
          files.forEach((_, index) => set(index, { progress: `${Math.round(event.progress ?? 0)}%` }));
        } else if (event.type === "file_processed" && position >= 0) {
          set(position, { status: "ready", description: event.description, progress: undefined });
        } else if (event.type === "error" && position >= 0) {
          set(position, { status: "failed", error: event.message, progress: undefined });
        }
      });
    } catch (failure) {
      files.forEach((_, index) => set(index, { status: "failed", error: (failure as Error).message }));
    }
  };
  const sources = useMemo(() => turns.flatMap((turn) => turn.run.sources), [turns]);

  const send = () => {
    const query = question.trim();
    if (!query || running) return;
    const minioFiles = attachments
      .filter((item) => item.status === "ready" && item.object_name)
      .map((item) => ({ object_name: item.object_name, name: item.name, type: item.type, size: item.size, url: item.url, description: item.description }));
    // The question box and the attachments are cleared once the question is on its way (kept if the
    // conversation cannot be created).
    void ask(query, historyOf(turns), minioFiles, () => {
      setQuestion("");
      setAttachments([]);
    });
  };

  /** Asks the last turn's question again: a new turn, the model seeing the conversation before that turn. */
  const regenerate = () => {
    const last = turns[turns.length - 1];
    if (!last || running) return;
    void ask(last.question, historyOf(turns.slice(0, -1)), []);
  };

  const ask = async (
    query: string,
    history: { role: string; content: string }[],
    minioFiles: Record<string, unknown>[],
    started?: () => void,
  ) => {
    setError(null);
    let conversationId = selected;
    try {
      if (conversationId === null) {
        const created = await conversations.create();
        conversationId = created.conversation_id;
        setSelected(conversationId);
        void refreshList();
      }
    } catch (failure) {
      setError((failure as Error).message);
      return;
    }
    started?.();
    setTurns((previous) => [...previous, { question: query, run: emptyRun(), running: true }]);
    const update = (change: (turn: Turn) => Turn) =>
      setTurns((previous) => previous.map((turn, index) => (index === previous.length - 1 ? change(turn) : turn)));
    const controller = new AbortController();
    abort.current = controller;
    // Messages come a token at a time; the screen takes them at most once a frame (and all at the end),
    // so a long answer does not re-render the page for every token.
    let pending: AgentMessage[] = [];
    let frame = 0;
    const flush = () => {
      frame = 0;
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      update((turn) => ({ ...turn, run: batch.reduce(applyMessage, turn.run) }));
    };
    try {
      const headers: Record<string, string> = { "content-type": "application/json" };
      const token = apiToken();
      if (token) headers.authorization = `Bearer ${token}`;
      const response = await fetch("/api/agent/run", {
        method: "POST",
        headers,
        body: JSON.stringify({
          query,
          conversation_id: conversationId,
          history,
          // The language of the agent's step labels: the screen's.
          language,
          ...(minioFiles.length > 0 ? { minio_files: minioFiles } : {}),
        }),
        signal: controller.signal,
      });
      if (!response.ok || !response.body) {
        const body = (await response.json().catch(() => ({}))) as { message?: string };
        throw new ApiError(
          response.status === 503
            ? t("chat.busy", { message: body.message ?? t("chat.tryAgainShortly") })
            : body.message ?? `${response.status}`,
          response.status,
        );
      }
      const parser = new AgentStreamParser();
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const messages = parser.feed(value);
        if (messages.length > 0) {
          pending.push(...messages);
          frame ||= requestAnimationFrame(flush);
        }
      }
    } catch (failure) {
      if ((failure as Error).name !== "AbortError") setError((failure as Error).message);
    } finally {
      cancelAnimationFrame(frame);
      flush();
      update((turn) => ({ ...turn, running: false }));
      abort.current = null;
      // The saved message carries the id that like/dislike needs.
      if (conversationId !== null) {
        try {
          const saved = await conversations.history(conversationId);
          const last = [...saved.message].reverse().find((message) => message.role === "assistant");
          if (last) update((turn) => ({ ...turn, messageId: last.message_id, opinion: last.opinion_flag ?? null }));
        } catch {
          // The list below still refreshes; like/dislike waits for the next load.
        }
        void refreshList();
      }
    }
  };

  const stop = async () => {
    if (selected === null) {
      abort.current?.abort();
      return;
    }
    try {
      await api(`/api/agent/stop/${selected}`);
    } catch {
      abort.current?.abort();
    }
  };

  const setOpinion = async (index: number, opinion: "Y" | "N") => {
    const turn = turns[index];
    if (!turn?.messageId) return;
    const next = turn.opinion === opinion ? null : opinion;
    try {
      await conversations.opinion(turn.messageId, next);
      setTurns((previous) => previous.map((item, position) => (position === index ? { ...item, opinion: next } : item)));
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const regenerateTitle = async () => {
    if (selected === null) return;
    try {
      const history = historyOf(turns);
      await conversations.generateTitle(selected, history);
      await refreshList();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const toggleDictation = async () => {
    setError(null);
    if (dictation.current) {
      const current = dictation.current;
      dictation.current = null;
      setRecording(false);
      try {
        const text = await current.stop();
        if (text) setQuestion(text);
      } catch (failure) {
        setError(t("chat.speechToTextError", { message: (failure as Error).message }));
      }
      return;
    }
    try {
      dictation.current = await startDictation((text) => setQuestion(text), language);
      setRecording(true);
    } catch (failure) {
      setError(t("chat.microphoneError", { message: (failure as Error).message }));
    }
  };

  const speak = async (index: number, text: string) => {
    setError(null);
    setSpeaking(index);
    try {
      const audio = await readAloud(text);
      audio.onended = () => setSpeaking(null);
    } catch (failure) {
      setSpeaking(null);
      setError(t("chat.readAloudError", { message: (failure as Error).message }));
    }
  };

  const showSource = useCallback((key: string) => {
    setHighlighted(key);
    document.getElementById(`source-${key}`)?.scrollIntoView({ block: "nearest" });
    document.getElementById(`source-${key}`)?.focus();
  }, []);

  const newChat = useCallback(() => {
    abort.current?.abort();
    setSelected(null);
    setTurns([]);
    setHighlighted(null);
    questionBox.current?.focus();
  }, []);

  // Titles as shown (the default one in the screen's language); the search matches what is shown.
  const titleOf = (item: Conversation) => displayTitle(item.conversation_title, language);
  const visible = list.filter((item) => titleOf(item).toLowerCase().includes(filter.trim().toLowerCase()));
  const current = list.find((item) => item.conversation_id === selected);

  /** The answer as Markdown (citations as numbers, then its sources) on the clipboard. */
  const copyAnswer = async (index: number) => {
    const turn = turns[index];
    if (!turn) return;
    let ok = true;
    try {
      await copyText(answerMarkdown(turn.run.answer, turn.run.sources, t("chat.sources")));
    } catch {
      ok = false;
    }
    setCopied({ index, ok });
    window.setTimeout(() => setCopied((shown) => (shown?.index === index ? null : shown)), 2000);
  };

  const exportConversation = (format: "md" | "json") => {
    const title = current ? titleOf(current) : t("chat.newChat");
    const conversation: ExportedConversation = {
      conversationId: selected,
      title,
      exportedAt: new Date(),
      turns: turns.map((turn) => ({
        question: turn.question,
        answer: turn.run.answer,
        sources: turn.run.sources,
        messageId: turn.messageId,
        opinion: turn.opinion,
      })),
    };
    if (format === "md") {
      const labels = {
        user: t("chat.export.user"),
        assistant: t("chat.export.assistant"),
        sources: t("chat.sources"),
        exported: (date: string) => t("chat.export.exported", { date }),
      };
      downloadFile(exportFileName(title, "md"), conversationToMarkdown(conversation, labels), "text/markdown;charset=utf-8");
    } else {
      downloadFile(exportFileName(title, "json"), conversationToJson(conversation), "application/json");
    }
  };

  // Keyboard shortcuts: Ctrl/⌘+Shift+O a new chat, `/` the question box (when not typing elsewhere), Esc
  // stops an answer. The handler reads the latest state through a ref, so it is added once.
  const shortcutActions = useRef({ newChat, stop, running });
  shortcutActions.current = { newChat, stop, running };
  useEffect(() => {
    const onKeyDown = (event: KeyboardEvent) => {
      if (event.defaultPrevented || event.isComposing) return;
      const actions = shortcutActions.current;
      const target = event.target as HTMLElement | null;
      const typing = !!target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
      if ((event.ctrlKey || event.metaKey) && event.shiftKey && !event.altKey && event.key.toLowerCase() === "o") {
        event.preventDefault();
        actions.newChat();
      } else if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
        event.preventDefault();
        questionBox.current?.focus();
      } else if (event.key === "Escape" && actions.running && !document.querySelector("dialog[open]")) {
        event.preventDefault();
        void actions.stop();
      }
    };
    window.addEventListener("keydown", onKeyDown);
    return () => window.removeEventListener("keydown", onKeyDown);
  }, []);
  const mac = typeof navigator !== "undefined" && /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

  return (
    <div className="chat">
      <aside className="conversations" aria-label={t("chat.conversations")}>
        <button
          type="button"
          className="primary"
          aria-keyshortcuts={mac ? "Meta+Shift+O" : "Control+Shift+O"}
          title={mac ? "⌘⇧O" : "Ctrl+Shift+O"}
          onClick={newChat}
        >
          {t("chat.newChat")}
        </button>
        <label className="field">
          <span>{t("chat.searchConversations")}</span>
          <input type="search" value={filter} onChange={(event) => setFilter(event.target.value)} />
        </label>
        {visible.length === 0 ? (
          <p className="empty">{list.length === 0 ? t("chat.noConversations") : t("chat.noTitleMatches")}</p>
        ) : (
          <ul>
            {visible.map((item) => (
              <li key={item.conversation_id} className={item.conversation_id === selected ? "selected" : undefined}>
                {renaming === item.conversation_id ? (
                  <RenameForm
                    initial={titleOf(item)}
                    onDone={async (name) => {
                      setRenaming(null);
                      // Unchanged is the title as shown: the default one is not renamed to its translation.
                      if (name && name !== titleOf(item) && name !== item.conversation_title) {
                        try {
                          await conversations.rename(item.conversation_id, name);
                          await refreshList();
                        } catch (failure) {
                          setError((failure as Error).message);
                        }
                      }
                    }}
                  />
                ) : (
                  <>
                    <button type="button" className="title" onClick={() => void open(item.conversation_id)}>
                      {titleOf(item)}
                    </button>
                    <button type="button" className="icon" aria-label={t("chat.rename", { title: titleOf(item) })} onClick={() => setRenaming(item.conversation_id)}>
                      <PencilIcon />
                    </button>
                    <button type="button" className="icon" aria-label={t("common.deleteNamed", { name: titleOf(item) })} onClick={() => setConfirmDelete(item)}>
                      <TrashIcon />
                    </button>
                  </>
                )}
              </li>
            ))}
          </ul>
        )}
        <details className="shortcuts">
          <summary>{t("chat.shortcuts")}</summary>
          <dl>
            <dt>
              {mac ? <kbd>⌘</kbd> : <kbd>Ctrl</kbd>}+<kbd>Shift</kbd>+<kbd>O</kbd>
            </dt>
            <dd>{t("chat.newChat")}</dd>
            <dt>
              <kbd>/</kbd>
            </dt>
            <dd>{t("chat.shortcut.focusQuestion")}</dd>
            <dt>
              <kbd>Esc</kbd>
            </dt>
            <dd>{t("chat.shortcut.stop")}</dd>
          </dl>
        </details>
      </aside>

      <section className="conversation" aria-label={t("chat.messages")}>
        <div className="conversation-head">
          <h1>{current ? titleOf(current) : t("chat.newChat")}</h1>
          {selected !== null && turns.length > 0 && !running && (
            <>
              <button type="button" onClick={() => void regenerateTitle()}>
                {t("chat.regenerateTitle")}
              </button>
              <button type="button" onClick={() => exportConversation("md")}>
                <DownloadIcon /> {t("chat.exportMarkdown")}
              </button>
              <button type="button" onClick={() => exportConversation("json")}>
                <DownloadIcon /> {t("chat.exportJson")}
              </button>
            </>
          )}
        </div>
        <ErrorAlert message={error} />
        <ol className="turns">
          {turns.length === 0 && (
            <li className="empty">{t("chat.emptyConversation")}</li>
          )}
          {turns.map((turn, index) => (
            <li key={index} className="turn">
              <p className="question">{turn.question}</p>
              <RunView run={turn.run} running={turn.running} onCite={showSource} t={t} />
              {!turn.running && (turn.messageId !== undefined || turn.run.answer) && (
                <div className="answer-actions">
                  {turn.messageId !== undefined && (
                    <div className="opinion" role="group" aria-label={t("chat.rateAnswer")}>
                      <button type="button" aria-pressed={turn.opinion === "Y"} onClick={() => void setOpinion(index, "Y")}>
                        <ThumbUpIcon /> {t("chat.like")}
                      </button>
                      <button type="button" aria-pressed={turn.opinion === "N"} onClick={() => void setOpinion(index, "N")}>
                        <ThumbDownIcon /> {t("chat.dislike")}
                      </button>
                    </div>
                  )}
                  {turn.run.answer && (
                    <>
                      <button type="button" disabled={speaking !== null} onClick={() => void speak(index, markdownToPlainText(turn.run.answer))}>
                        <SpeakerIcon /> {speaking === index ? t("chat.speaking") : t("chat.readAloud")}
                      </button>
                      <button type="button" onClick={() => void copyAnswer(index)}>
                        <CopyIcon />{" "}
                        {copied?.index === index ? (copied.ok ? t("chat.copied") : t("chat.copyFailed")) : t("chat.copy")}
                      </button>
                    </>
                  )}
                  {index === turns.length - 1 && !running && (
                    <button type="button" onClick={regenerate}>
                      <RegenerateIcon /> {t("chat.regenerate")}
                    </button>
                  )}
                </div>
              )}
            </li>
          ))}
        </ol>
        {attachments.length > 0 && (
          <ul className="attachments" aria-label={t("chat.attachments")}>
            {attachments.map((item, index) => (
              <li key={`${item.name}-${index}`} className={`attachment attachment-${item.status}`}>
                <span>{item.name}</span>
                <span className="muted" data-testid="attachment-status">
                  {item.status === "failed" ? t("chat.attachment.failed", { error: item.error ?? "" }) : t(ATTACHMENT_STATUS[item.status])}
                  {item.progress ? ` ${item.progress}` : ""}
                </span>
                <button
                  type="button"
                  className="icon"
                  aria-label={t("chat.attachment.remove", { name: item.name })}
                  onClick={() => setAttachments((previous) => previous.filter((_, position) => position !== index))}
                >
                  <TrashIcon />
                </button>
              </li>
            ))}
          </ul>
        )}
        <form
          className="ask"
          onSubmit={(event) => {
            event.preventDefault();
            send();
          }}
        >
          <label className="field grow">
            <span>{t("chat.yourQuestion")}</span>
            <textarea
              ref={questionBox}
              value={question}
              rows={2}
              aria-keyshortcuts="/"
              onChange={(event) => setQuestion(event.target.value)}
              onKeyDown={(event) => {
                if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
                  event.preventDefault();
                  send();
                }
              }}
            />
          </label>
          <label className="attach button-like">
            <span>{t("chat.attach")}</span>
            <input
              type="file"
              multiple
              className="visually-hidden"
              aria-label={t("chat.attachFiles")}
              onChange={(event) => {
                void attach(event.target.files);
                event.target.value = "";
              }}
            />
          </label>
          <button
            type="button"
            aria-pressed={recording}
            aria-label={recording ? t("chat.stopDictation") : t("chat.dictate")}
            className={recording ? "danger" : undefined}
            onClick={() => void toggleDictation()}
          >
            <MicIcon />
          </button>
          {running ? (
            <button type="button" className="danger" aria-keyshortcuts="Escape" title="Esc" onClick={() => void stop()}>
              {t("chat.stop")}
            </button>
          ) : (
            <button type="submit" className="primary" disabled={!question.trim() || attaching}>
              {t("chat.send")}
            </button>
          )}
        </form>
      </section>

      <aside className="sources" aria-label={t("chat.sources")}>
        <h2>{t("chat.sources")}</h2>
        {sources.length === 0 ? (
          <p className="empty">{t("chat.noSources")}</p>
        ) : (
          <ul>
            {sources.map((source) => (
              <SourceCard key={sourceKey(source)} source={source} highlighted={highlighted === sourceKey(source)} t={t} />
            ))}
          </ul>
        )}
      </aside>

      {confirmDelete && (
        <ConfirmDialog
          message={t("chat.confirmDelete", { title: titleOf(confirmDelete) })}
          confirm={t("common.delete")}
          onCancel={() => setConfirmDelete(null)}
          onConfirm={async () => {
            const target = confirmDelete;
            setConfirmDelete(null);
            try {
              await conversations.remove(target.conversation_id);
              if (selected === target.conversation_id) {
                setSelected(null);
                setTurns([]);
              }
              await refreshList();
            } catch (failure) {
              setError((failure as Error).message);
            }
          }}
        />
      )}
    </div>
  );
}

/** A step's duration as shown: `1.2 s` from the stream becomes the screen's "1.2 s" / "1.2 秒". */
function formatDuration(duration: string, t: Translate): string {
  const seconds = /^([\d.]+) s$/.exec(duration)?.[1];
  return seconds ? t("chat.seconds", { seconds }) : duration;
}

const RunView = memo(function RunView({
  run,
  running,
  onCite,
  t,
}: {
  run: AgentRun;
  running: boolean;
  onCite: (key: string) => void;
  t: Translate;
}) {
  const citations = useMemo(() => numberCitations(run.answer, run.sources), [run.answer, run.sources]);
  const lastStep = run.steps[run.steps.length - 1];
  return (
    <div className="run" aria-live="polite" aria-busy={running}>
      {run.steps.map((step) => (
        <details key={step.number} className="step" open={running && step === lastStep}>
          <summary>
            {t("chat.step", { number: step.number })}
            {step.calls.length > 0 && <span className="tag">{t("chat.toolCalls", { count: step.calls.length })}</span>}
            {step.errors.length > 0 && <span className="tag bad">{t("chat.stepError")}</span>}
            {step.duration && <span className="muted"> · {formatDuration(step.duration, t)}</span>}
          </summary>
          {step.thinking && <Markdown className="thinking" text={step.thinking} streaming={running && step === lastStep} />}
          {step.code && <pre className="code">{step.code}</pre>}
          {step.calls.map((call, index) => (
            <p key={`call-${index}`} className="call">
              {call}
            </p>
          ))}
          {step.observations.map((observation, index) => (
            <pre key={`observation-${index}`} className="observation">
              {observation}
            </pre>
          ))}
          {step.errors.map((message, index) => (
            <p key={`error-${index}`} className="error">
              {message}
            </p>
          ))}
        </details>
      ))}
      {running && !run.answer && <p className="muted">{t("chat.thinking")}</p>}
      {run.answer && <Markdown className="answer" text={run.answer} citations={citations} streaming={running} onCite={onCite} />}
      {!running && !run.answer && run.errors.length > 0 && <p className="error">{run.errors[run.errors.length - 1]}</p>}
    </div>
  );
});

function SourceCard({ source, highlighted, t }: { source: Source; highlighted: boolean; t: Translate }) {
  const accurate = source.score_details?.accurate ?? source.score_details?.accuracy;
  const semantic = source.score_details?.semantic;
  return (
    <li id={`source-${sourceKey(source)}`} tabIndex={-1} className={highlighted ? "source highlighted" : "source"}>
      <h3>{source.title}</h3>
      {source.filename && source.filename !== source.title && <p className="muted">{source.filename}</p>}
      <p className="scores">
        {t("scores.score", { value: source.score?.toFixed(3) ?? "–" })}
        {accurate !== undefined && <> · {t("scores.keyword", { value: accurate.toFixed(3) })}</>}
        {semantic !== undefined && <> · {t("scores.semantic", { value: semantic.toFixed(3) })}</>}
      </p>
      <p className="chunk">{source.text}</p>
    </li>
  );
}

function RenameForm({ initial, onDone }: { initial: string; onDone: (name: string | null) => void }) {
  const t = useT();
  const [name, setName] = useState(initial);
  return (
    <form
      className="rename"
      onSubmit={(event) => {
        event.preventDefault();
        onDone(name.trim());
      }}
    >
      <label className="field">
        <span className="visually-hidden">{t("chat.newTitle")}</span>
        <input
          autoFocus
          value={name}
          onChange={(event) => setName(event.target.value)}
          onKeyDown={(event) => {
            if (event.key === "Escape") onDone(null);
          }}
        />
      </label>
      <button type="submit">{t("common.save")}</button>
    </form>
  );
}

export function ConfirmDialog({
  message,
  confirm,
  onConfirm,
  onCancel,
}: {
  message: string;
  confirm: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const t = useT();
  const dialog = useRef<HTMLDialogElement>(null);
  const confirmButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    dialog.current?.showModal();
    // showModal focuses the first button (Cancel); the action asked for gets the focus instead.
    confirmButton.current?.focus();
  }, []);
  return (
    <dialog ref={dialog} className="dialog" aria-labelledby="confirm-message" onCancel={onCancel}>
      <p id="confirm-message">{message}</p>
      <div className="actions">
        <button type="button" onClick={onCancel}>
          {t("common.cancel")}
        </button>
        <button type="button" className="danger" onClick={onConfirm} ref={confirmButton}>
          {confirm}
        </button>
      </div>
    </dialog>
  );
}

/** A failure a person should read, announced to screen readers; nothing when there is none. */
export function ErrorAlert({ message }: { message: string | null }) {
  return message ? (
    <p role="alert" className="error">
      {message}
    </p>
  ) : null;
}
