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

interface Upload {
  name: string;
  progress: number;
  error?: string;
}

const FINISHED = new Set(["COMPLETED", "FAILED", "completed", "failed"]);

export function KnowledgeScreen() {
  const [indices, setIndices] = useState<IndexSummary[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [info, setInfo] = useState<IndexInfo | null>(null);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [newName, setNewName] = useState("");
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
      await knowledge.create(name);
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
      <aside className="bases" aria-label="Knowledge bases">
        <form
          className="create"
          onSubmit={(event) => {
            event.preventDefault();
            void create();
          }}
        >
          <label className="field">
            <span>New knowledge base</span>
            <input value={newName} placeholder="lower-case name" onChange={(event) => setNewName(event.target.value)} />
          </label>
          <button type="submit" className="primary" disabled={!newName.trim()}>
            Create
          </button>
        </form>
        {indices.length === 0 ? (
          <p className="empty">No knowledge bases yet. Create one, then drop documents into it.</p>
        ) : (
          <ul>
            {indices.map((index) => (
              <li key={index.name} className={index.name === selected ? "selected" : undefined}>
                <button type="button" className="title" onClick={() => setSelected(index.name)}>
                  {index.name}
                  <span className="muted">
                    {" "}
                    {index.stats?.base_info?.doc_count ?? 0} files · {index.stats?.base_info?.chunk_count ?? 0} chunks
                  </span>
                </button>
              </li>
            ))}
          </ul>
        )}
      </aside>

      <section className="base" aria-label="Knowledge base">
        <ErrorAlert message={error} />
        {!selected ? (
          <p className="empty">Choose a knowledge base on the left.</p>
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
                Search it in chat
              </label>
              <button
                type="button"
                className="danger"
                onClick={() =>
                  setConfirm({
                    message: `Delete the knowledge base "${selected}" and everything indexed in it?`,
                    action: async () => {
                      await knowledge.remove(selected);
                      setSelected(null);
                      await refresh();
                    },
                  })
                }
              >
                Delete knowledge base
              </button>
            </div>
            {info && (
              <p className="muted">
                {info.base_info.doc_count} files · {info.base_info.chunk_count} chunks · {info.base_info.store_size} ·{" "}
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
              <label className="field upload">
                <span>Upload documents (or drop files here)</span>
                <input type="file" multiple onChange={(event) => void upload(event.target.files)} />
              </label>
            </div>
            {uploads.length > 0 && (
              <ul className="uploads" aria-label="Uploads">
                {uploads.map((item) => (
                  <li key={item.name}>
                    <span>{item.name}</span>
                    <progress max={1} value={item.progress} aria-label={`Upload of ${item.name}`} />
                    {item.error && <span className="error">{item.error}</span>}
                  </li>
                ))}
              </ul>
            )}
            <h2>Files</h2>
            {info?.files?.length ? (
              <table className="files">
                <thead>
                  <tr>
                    <th scope="col">File</th>
                    <th scope="col">Status</th>
                    <th scope="col">Chunks</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
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
                          {file.status}
                        </span>
                        {file.error_reason && <span className="error"> {file.error_reason}</span>}
                      </td>
                      <td>{file.chunk_count ?? 0}</td>
                      <td>
                        <button
                          type="button"
                          aria-label={`Delete ${file.filename ?? file.path_or_url}`}
                          onClick={() =>
                            setConfirm({
                              message: `Remove "${file.filename ?? file.path_or_url}" from ${selected}?`,
                              action: async () => {
                                await knowledge.removeFile(selected, file.path_or_url);
                                await refreshInfo(selected);
                                await refresh();
                              },
                            })
                          }
                        >
                          Delete
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : (
              <p className="empty">No files yet. Upload PDF, Word, PowerPoint, Excel, e-mail, e-book or text files.</p>
            )}
            <WatchedFolders index={selected} onChange={() => void refreshInfo(selected)} />
            <SearchPlayground index={selected} />
          </>
        )}
      </section>
      {confirm && (
        <ConfirmDialog
          message={confirm.message}
          confirm="Delete"
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
    <section className="playground" aria-label="Search playground">
      <h2>Try a search</h2>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void search();
        }}
      >
        <label className="field grow">
          <span>Query</span>
          <input type="search" value={query} onChange={(event) => setQuery(event.target.value)} />
        </label>
        <label className="field">
          <span>Mode</span>
          <select value={mode} onChange={(event) => setMode(event.target.value as typeof mode)}>
            <option value="hybrid">hybrid</option>
            <option value="accurate">keyword (accurate)</option>
            <option value="semantic">semantic</option>
          </select>
        </label>
        {mode === "hybrid" && (
          <label className="field">
            <span>Keyword weight {weight.toFixed(2)}</span>
            <input type="range" min={0} max={1} step={0.05} value={weight} onChange={(event) => setWeight(Number(event.target.value))} />
          </label>
        )}
        <label className="field">
          <span>Results</span>
          <input type="number" min={1} max={100} value={topK} onChange={(event) => setTopK(Number(event.target.value))} />
        </label>
        <button type="submit" className="primary" disabled={!query.trim()}>
          Search
        </button>
      </form>
      <ErrorAlert message={error} />
      {results && (
        <>
          <p className="muted">
            {results.hits.length} results in {results.ms.toFixed(1)} ms
          </p>
          <ol className="hits">
            {results.hits.map((hit, position) => (
              <li key={position}>
                <h3>{hit.title ?? hit.filename}</h3>
                <p className="scores">
                  score {hit.score?.toFixed(3)}
                  {hit.score_details?.accurate !== undefined && <> · keyword {hit.score_details.accurate.toFixed(3)}</>}
                  {hit.score_details?.semantic !== undefined && <> · semantic {hit.score_details.semantic.toFixed(3)}</>}
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
    <section aria-label="Watched folders">
      <h2>Watched folders</h2>
      <p className="muted">Files in a watched folder are kept indexed here: added, changed and deleted as they change on disk.</p>
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
          <span>Folder to watch (absolute path)</span>
          <input value={path} placeholder="/home/you/Documents/notes" onChange={(event) => setPath(event.target.value)} />
        </label>
        {inDesktopApp() && (
          <button
            type="button"
            onClick={() =>
              void run(async () => {
                const chosen = await chooseFolder("Watch a folder");
                if (chosen) setPath(chosen);
              })
            }
          >
            Choose…
          </button>
        )}
        <button type="submit" disabled={!path.trim()}>
          Watch
        </button>
      </form>
      <ErrorAlert message={error} />
      {folders.length > 0 && (
        <ul className="folders">
          {folders.map((folder) => (
            <li key={folder.id}>
              <span>{folder.path}</span> <span className="muted">{folder.file_count} files</span>{" "}
              <button type="button" onClick={() => void run(() => watchedFolders.sync(folder.id))}>
                Sync now
              </button>{" "}
              <button type="button" aria-label={`Stop watching ${folder.path}`} onClick={() => void run(() => watchedFolders.remove(folder.id, false))}>
                Stop watching
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
