// Knowledge bases: create and delete them, upload files with a progress bar each and live task status,
// the file list with chunk counts and a chunk preview, delete a file, choose which bases the chat searches,
// and a search playground (mode, weight, top_k, the scores).

import { useCallback, useEffect, useState } from "react";
import {
  config,
  knowledge,
  uploadToKnowledgeBase,
  watchedFolders,
  type IndexInfo,
  type WatchedFolder,
  type IndexSummary,
  type SearchHit,
} from "../api/client";
import { ConfirmDialog, ErrorAlert } from "./Chat";
import { chooseFolder, inDesktopApp } from "../lib/desktop";
import { useLanguage, useT, type PlainKey, type Translate } from "../lib/i18n";

interface Upload {
  name: string;
  progress: number;
  error?: string;
}

const FINISHED = new Set(["COMPLETED", "FAILED", "completed", "failed"]);
const MULTILINGUAL_MODEL = "multilingual-e5-small";
/** What each local embedding model is good for, in the create form. */
const EMBEDDING_MODEL_LABELS: Record<string, PlainKey | undefined> = {
  "multilingual-e5-small": "knowledge.model.multilingualE5Small",
  "all-MiniLM-L6-v2": "knowledge.model.allMiniLmL6V2",
};

function embeddingModelLabel(model: string, t: Translate): string {
  const key = EMBEDDING_MODEL_LABELS[model];
  return key ? t(key) : model;
}

/** A file's ingestion status as shown (the server's constants, in Chinese on the Chinese screen). */
const FILE_STATUS: Record<string, PlainKey | undefined> = {
  WAITING: "knowledge.status.WAITING",
  PROCESSING: "knowledge.status.PROCESSING",
  FORWARDING: "knowledge.status.FORWARDING",
  COMPLETED: "knowledge.status.COMPLETED",
  FAILED: "knowledge.status.FAILED",
};

function fileStatusLabel(status: string, t: Translate): string {
  const key = FILE_STATUS[status.toUpperCase()];
  return key ? t(key) : status;
}

/** "3 files · 12 chunks". */
function counts(files: number, chunks: number, t: Translate): string {
  return `${t("knowledge.files", { count: files })} · ${t("knowledge.chunks", { count: chunks })}`;
}

export function KnowledgeScreen() {
  const t = useT();
  const [indices, setIndices] = useState<IndexSummary[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [info, setInfo] = useState<IndexInfo | null>(null);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [newName, setNewName] = useState("");
  const [models, setModels] = useState<string[]>([]);
  const [newModel, setNewModel] = useState("");
  const [chatBases, setChatBases] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [confirm, setConfirm] = useState<{ message: string; action: () => Promise<void> } | null>(null);
  const [dragging, setDragging] = useState(false);

  const refresh = useCallback(async () => {
    try {
      setIndices(await knowledge.list());
      setChatBases((await config.load()).data?.selectedKbNames ?? []);
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, []);

  const refreshInfo = useCallback(async (name: string) => {
    try {
      setInfo(await knowledge.info(name));
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  // The server's default first; on a Chinese screen the multilingual model is offered first, since the
  // English model cannot tell Chinese texts apart (bench/results/multilingual.md).
  const language = useLanguage();
  useEffect(() => {
    knowledge
      .embeddingModels()
      .then((names) => {
        setModels(names);
        const multilingual = names.find((name) => name === MULTILINGUAL_MODEL);
        setNewModel((language === "zh" ? multilingual : undefined) ?? names[0] ?? "");
      })
      .catch(() => setModels([]));
  }, [language]);

  useEffect(() => {
    if (selected) void refreshInfo(selected);
    else setInfo(null);
  }, [selected, refreshInfo]);

  // The file list follows the server: every second while a file is being ingested, every few seconds
  // otherwise (a watched folder or another client can add files at any time).
  const pending = info?.files?.some((file) => !FINISHED.has(file.status)) ?? false;
  useEffect(() => {
    if (!selected) return;
    const timer = window.setInterval(
      () => {
        void refreshInfo(selected);
        if (pending) void refresh();
      },
      pending ? 1000 : 3000,
    );
    return () => window.clearInterval(timer);
  }, [selected, pending, refreshInfo, refresh]);

  const create = async () => {
    const name = newName.trim();
    if (!name) return;
    setError(null);
    try {
      await knowledge.create(name, newModel || undefined);
      setNewName("");
      await refresh();
      setSelected(name);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const toggleChat = async (name: string, on: boolean) => {
    const before = chatBases;
    // Shown at once; put back if the setting cannot be saved.
    setChatBases(on ? [...before.filter((known) => known !== name), name] : before.filter((known) => known !== name));
    try {
      const current = await config.load();
      const names = new Set(current.data?.selectedKbNames ?? []);
      if (on) names.add(name);
      else names.delete(name);
      const data = { selectedKbModels: [], selectedKbSources: [], ...current.data, selectedKbNames: [...names] };
      await config.save({ ...current, data });
      setChatBases([...names]);
    } catch (failure) {
      setChatBases(before);
      setError((failure as Error).message);
    }
  };

  const upload = async (files: FileList | null) => {
    if (!selected || !files) return;
    const chosen = Array.from(files);
    setUploads(chosen.map((file) => ({ name: file.name, progress: 0 })));
    await Promise.all(
      chosen.map(async (file, position) => {
        const set = (change: Partial<Upload>) =>
          setUploads((previous) => previous.map((item, index) => (index === position ? { ...item, ...change } : item)));
        try {
          await uploadToKnowledgeBase(selected, file, (progress) => set({ progress }));
        } catch (failure) {
          set({ error: (failure as Error).message });
        }
      }),
    );
    await refreshInfo(selected);
  };

  return (
    <div className="knowledge">
      <aside className="bases" aria-label={t("knowledge.bases")}>
        <form
          className="create"
          onSubmit={(event) => {
            event.preventDefault();
            void create();
          }}
        >
          <label className="field">
            <span>{t("knowledge.newBase")}</span>
            <input value={newName} placeholder={t("knowledge.namePlaceholder")} onChange={(event) => setNewName(event.target.value)} />
          </label>
          {models.length > 1 && (
            <label className="field">
              <span>{t("knowledge.embeddingModel")}</span>
              <select value={newModel} onChange={(event) => setNewModel(event.target.value)}>
                {models.map((model) => (
                  <option key={model} value={model}>
                    {embeddingModelLabel(model, t)}
                  </option>
                ))}
              </select>
            </label>
          )}
          <button type="submit" className="primary" disabled={!newName.trim()}>
            {t("knowledge.create")}
          </button>
        </form>
        {indices.length === 0 ? (
          <p className="empty">{t("knowledge.noBases")}</p>
        ) : (
          <ul>
            {indices.map((index) => (
              <li key={index.name} className={index.name === selected ? "selected" : undefined}>
                <button type="button" className="title" onClick={() => setSelected(index.name)}>
                  {index.name}
                  <span className="muted">
                    {" "}
                    {counts(index.stats?.base_info?.doc_count ?? 0, index.stats?.base_info?.chunk_count ?? 0, t)}
                  </span>
                </button>
              </li>
            ))}
          </ul>
        )}
      </aside>

      <section className="base" aria-label={t("knowledge.base")}>
        <ErrorAlert message={error} />
        {!selected ? (
          <p className="empty">{t("knowledge.chooseBase")}</p>
        ) : (
          <>
            <div className="conversation-head">
              <h1>{selected}</h1>
              <label className="check">
                <input
                  type="checkbox"
                  checked={chatBases.includes(selected)}
                  onChange={(event) => void toggleChat(selected, event.target.checked)}
                />
                {t("knowledge.searchInChat")}
              </label>
              <button
                type="button"
                className="danger"
                onClick={() =>
                  setConfirm({
                    message: t("knowledge.confirmDeleteBase", { name: selected }),
                    action: async () => {
                      await knowledge.remove(selected);
                      setSelected(null);
                      await refresh();
                    },
                  })
                }
              >
                {t("knowledge.deleteBase")}
              </button>
            </div>
            {info && (
              <p className="muted">
                {counts(info.base_info.doc_count, info.base_info.chunk_count, t)} · {info.base_info.store_size} ·{" "}
                {info.base_info.embedding_model}
              </p>
            )}
            <div
              className={dragging ? "dropzone dragging" : "dropzone"}
              onDragOver={(event) => {
                event.preventDefault();
                setDragging(true);
              }}
              onDragLeave={() => setDragging(false)}
              onDrop={(event) => {
                event.preventDefault();
                setDragging(false);
                void upload(event.dataTransfer.files);
              }}
            >
              {/* The browser's own file button speaks the browser's language: a button of the page's instead. */}
              <div className="field upload">
                <span id="upload-documents">{t("knowledge.upload")}</span>
                <label className="button-like">
                  {t("knowledge.chooseFiles")}
                  <input
                    type="file"
                    multiple
                    className="visually-hidden"
                    aria-labelledby="upload-documents"
                    onChange={(event) => void upload(event.target.files)}
                  />
                </label>
              </div>
            </div>
            {uploads.length > 0 && (
              <ul className="uploads" aria-label={t("knowledge.uploads")}>
                {uploads.map((item) => (
                  <li key={item.name}>
                    <span>{item.name}</span>
                    <progress max={1} value={item.progress} aria-label={t("knowledge.uploadOf", { name: item.name })} />
                    {item.error && <span className="error">{item.error}</span>}
                  </li>
                ))}
              </ul>
            )}
            <h2>{t("knowledge.filesHeading")}</h2>
            {info?.files?.length ? (
              <table className="files">
                <thead>
                  <tr>
                    <th scope="col">{t("knowledge.file")}</th>
                    <th scope="col">{t("common.status")}</th>
                    <th scope="col">{t("knowledge.chunksColumn")}</th>
                    <th scope="col">
                      <span className="visually-hidden">{t("common.actions")}</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {info.files.map((file) => (
                    <tr key={file.path_or_url}>
                      <td>
                        <details>
                          <summary>{file.filename ?? file.file ?? file.path_or_url}</summary>
                          {(file.chunks ?? []).slice(0, 3).map((chunk) => (
                            <p key={chunk.id} className="chunk">
                              {chunk.content}
                            </p>
                          ))}
                        </details>
                      </td>
                      <td>
                        <span className={`status status-${file.status.toLowerCase()}`} data-testid="file-status">
                          {fileStatusLabel(file.status, t)}
                        </span>
                        {file.error_reason && <span className="error"> {file.error_reason}</span>}
                      </td>
                      <td>{file.chunk_count ?? 0}</td>
                      <td>
                        <button
                          type="button"
                          aria-label={t("common.deleteNamed", { name: file.filename ?? file.path_or_url })}
                          onClick={() =>
                            setConfirm({
                              message: t("knowledge.confirmRemoveFile", { file: file.filename ?? file.path_or_url, base: selected }),
                              action: async () => {
                                await knowledge.removeFile(selected, file.path_or_url);
                                await refreshInfo(selected);
                                await refresh();
                              },
                            })
                          }
                        >
                          {t("common.delete")}
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : (
              <p className="empty">{t("knowledge.noFiles")}</p>
            )}
            <WatchedFolders index={selected} onChange={() => void refreshInfo(selected)} />
            <SearchPlayground index={selected} />
          </>
        )}
      </section>
      {confirm && (
        <ConfirmDialog
          message={confirm.message}
          confirm={t("common.delete")}
          onCancel={() => setConfirm(null)}
          onConfirm={async () => {
            const action = confirm.action;
            setConfirm(null);
            try {
              await action();
            } catch (failure) {
              setError((failure as Error).message);
            }
          }}
        />
      )}
    </div>
  );
}

function SearchPlayground({ index }: { index: string }) {
  const t = useT();
  const [query, setQuery] = useState("");
  const [mode, setMode] = useState<"accurate" | "semantic" | "hybrid">("hybrid");
  const [weight, setWeight] = useState(0.3);
  const [topK, setTopK] = useState(5);
  const [results, setResults] = useState<{ hits: SearchHit[]; ms: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const search = async () => {
    setError(null);
    try {
      const body = await knowledge.search(mode, {
        query,
        index_names: [index],
        top_k: topK,
        ...(mode === "hybrid" ? { weight_accurate: weight } : {}),
      });
      setResults({ hits: body.results, ms: body.query_time_ms });
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  return (
    <section className="playground" aria-label={t("knowledge.playground")}>
      <h2>{t("knowledge.tryASearch")}</h2>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void search();
        }}
      >
        <label className="field grow">
          <span>{t("knowledge.query")}</span>
          <input type="search" value={query} onChange={(event) => setQuery(event.target.value)} />
        </label>
        <label className="field">
          <span>{t("knowledge.mode")}</span>
          <select value={mode} onChange={(event) => setMode(event.target.value as typeof mode)}>
            <option value="hybrid">{t("knowledge.mode.hybrid")}</option>
            <option value="accurate">{t("knowledge.mode.accurate")}</option>
            <option value="semantic">{t("knowledge.mode.semantic")}</option>
          </select>
        </label>
        {mode === "hybrid" && (
          <label className="field">
            <span>{t("knowledge.keywordWeight", { weight: weight.toFixed(2) })}</span>
            <input type="range" min={0} max={1} step={0.05} value={weight} onChange={(event) => setWeight(Number(event.target.value))} />
          </label>
        )}
        <label className="field">
          <span>{t("knowledge.results")}</span>
          <input type="number" min={1} max={100} value={topK} onChange={(event) => setTopK(Number(event.target.value))} />
        </label>
        <button type="submit" className="primary" disabled={!query.trim()}>
          {t("knowledge.search")}
        </button>
      </form>
      <ErrorAlert message={error} />
      {results && (
        <>
          <p className="muted">
            {t("knowledge.resultsIn", { count: results.hits.length, ms: results.ms.toFixed(1) })}
          </p>
          <ol className="hits">
            {results.hits.map((hit, position) => (
              <li key={position}>
                <h3>{hit.title ?? hit.filename}</h3>
                <p className="scores">
                  {t("scores.score", { value: hit.score?.toFixed(3) ?? "" })}
                  {hit.score_details?.accurate !== undefined && <> · {t("scores.keyword", { value: hit.score_details.accurate.toFixed(3) })}</>}
                  {hit.score_details?.semantic !== undefined && <> · {t("scores.semantic", { value: hit.score_details.semantic.toFixed(3) })}</>}
                </p>
                <p className="chunk">{hit.content}</p>
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}

function WatchedFolders({ index, onChange }: { index: string; onChange: () => void }) {
  const t = useT();
  const [folders, setFolders] = useState<WatchedFolder[]>([]);
  const [path, setPath] = useState("");
  const [error, setError] = useState<string | null>(null);
  const refresh = useCallback(async () => {
    try {
      setFolders((await watchedFolders.list()).filter((folder) => folder.index_name === index));
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, [index]);
  useEffect(() => {
    void refresh();
  }, [refresh]);
  const run = async (action: () => Promise<unknown>) => {
    setError(null);
    try {
      await action();
      await refresh();
      onChange();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  return (
    <section aria-label={t("knowledge.watched")}>
      <h2>{t("knowledge.watched")}</h2>
      <p className="muted">{t("knowledge.watchedHelp")}</p>
      <form
        className="create"
        onSubmit={(event) => {
          event.preventDefault();
          void run(async () => {
            await watchedFolders.add(path.trim(), index);
            setPath("");
          });
        }}
      >
        <label className="field">
          <span>{t("knowledge.folderToWatch")}</span>
          <input value={path} placeholder={t("knowledge.folderPlaceholder")} onChange={(event) => setPath(event.target.value)} />
        </label>
        {inDesktopApp() && (
          <button
            type="button"
            onClick={() =>
              void run(async () => {
                const chosen = await chooseFolder(t("knowledge.chooseFolderTitle"));
                if (chosen) setPath(chosen);
              })
            }
          >
            {t("knowledge.choose")}
          </button>
        )}
        <button type="submit" disabled={!path.trim()}>
          {t("knowledge.watch")}
        </button>
      </form>
      <ErrorAlert message={error} />
      {folders.length > 0 && (
        <ul className="folders">
          {folders.map((folder) => (
            <li key={folder.id}>
              <span>{folder.path}</span> <span className="muted">{t("knowledge.files", { count: folder.file_count })}</span>{" "}
              <button type="button" onClick={() => void run(() => watchedFolders.sync(folder.id))}>
                {t("knowledge.syncNow")}
              </button>{" "}
              <button type="button" aria-label={t("knowledge.stopWatchingNamed", { path: folder.path })} onClick={() => void run(() => watchedFolders.remove(folder.id, false))}>
                {t("knowledge.stopWatching")}
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
