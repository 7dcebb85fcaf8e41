// Models: the local models (GGUF files, the embedder, the speech engines) and remote OpenAI-compatible
// ones; add, edit, delete, health checks with status colours, the ModelEngine hub's list, and which model
// the app uses for each role (Config Sync).

import { useCallback, useEffect, useRef, useState } from "react";
import { config, models, type AppConfig, type HubModel, type ModelRecord } from "../api/client";
import { ConfirmDialog, ErrorAlert } from "./Chat";

const TYPES = ["llm", "embedding", "vlm", "rerank", "stt", "tts"] as const;
const ROLES: { key: string; label: string; type: string }[] = [
  { key: "llm", label: "Chat", type: "llm" },
  { key: "embedding", label: "Embedding", type: "embedding" },
  { key: "stt", label: "Speech-to-text", type: "stt" },
  { key: "tts", label: "Text-to-speech", type: "tts" },
];

interface Draft {
  model_name: string;
  display_name: string;
  model_type: string;
  base_url: string;
  api_key: string;
}

/** The server sends Nexent's status constants (its client colours only those); the screen shows them in
 *  English and styles them by an English key. English values are understood as well. */
const STATUS_KEYS: Record<string, string> = { 未检测: "not_detected", 检测中: "detecting", 可用: "available", 不可用: "unavailable" };
function statusKey(status: string): string {
  return STATUS_KEYS[status] ?? (status || "not_detected");
}

const EMPTY: Draft = { model_name: "", display_name: "", model_type: "llm", base_url: "", api_key: "" };

export function ModelsScreen() {
  const [records, setRecords] = useState<ModelRecord[]>([]);
  const [details, setDetails] = useState<Record<string, string>>({});
  const [editing, setEditing] = useState<{ draft: Draft; existing: boolean } | null>(null);
  const [deleting, setDeleting] = useState<ModelRecord | null>(null);
  const [hub, setHub] = useState<HubModel[] | null>(null);
  const [settings, setSettings] = useState<AppConfig | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const refresh = useCallback(async () => {
    try {
      setRecords(await models.list());
      setSettings(await config.load());
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  const check = async (record: ModelRecord) => {
    setRecords((previous) => previous.map((item) => (item.model_id === record.model_id ? { ...item, connect_status: "检测中" } : item)));
    try {
      const report = await models.healthCheck(record.model_name);
      setDetails((previous) => ({ ...previous, [record.model_name]: report.desc ?? "" }));
    } catch (failure) {
      setDetails((previous) => ({ ...previous, [record.model_name]: (failure as Error).message }));
    }
    await refresh();
  };

  const save = async (draft: Draft, existing: boolean) => {
    setError(null);
    const body = {
      model_name: draft.model_name.trim(),
      display_name: draft.display_name.trim() || draft.model_name.trim(),
      model_type: draft.model_type,
      base_url: draft.base_url.trim() || null,
      api_key: draft.api_key || null,
      model_factory: "OpenAI-API-Compatible",
    };
    try {
      if (existing) await models.update(body);
      else await models.create(body);
      setEditing(null);
      await refresh();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const choose = async (role: string, record: ModelRecord | undefined) => {
    if (!settings) return;
    const next: AppConfig = {
      ...settings,
      models: {
        ...settings.models,
        [role]: {
          modelName: record?.model_name ?? "",
          displayName: record?.display_name ?? "",
          apiConfig: { apiKey: "", modelUrl: record?.base_url ?? "" },
        },
      },
    };
    try {
      await config.save(next);
      setSettings(await config.load());
      setNotice("Saved. The chat model is chosen when the server starts: restart it to switch.");
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const chosen = (role: string) => {
    const value = settings?.models?.[role] as { modelName?: string; name?: string } | undefined;
    return value?.modelName ?? value?.name ?? "";
  };

  return (
    <div className="page">
      <div className="conversation-head">
        <h1>Models</h1>
        <button type="button" className="primary" onClick={() => setEditing({ draft: { ...EMPTY }, existing: false })}>
          Add a remote model
        </button>
      </div>
      <ErrorAlert message={error} />
      {notice && <p className="notice">{notice}</p>}
      {records.length === 0 ? (
        <p className="empty">
          No model yet. Put a GGUF file in the models folder (python3 models/fetch.py llm) or add a remote
          OpenAI-compatible model.
        </p>
      ) : (
        <table className="files">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Where</th>
              <th scope="col">Status</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {records.map((record) => (
              <tr key={record.model_id}>
                <td>
                  <strong>{record.display_name}</strong>
                  {record.display_name !== record.model_name && <div className="muted">{record.model_name}</div>}
                </td>
                <td>{record.model_type}</td>
                <td className="muted">{record.model_factory === "local" ? "this machine" : record.base_url || record.model_factory}</td>
                <td>
                  <span className={`status status-${statusKey(record.connect_status)}`} data-testid="model-status">
                    {statusKey(record.connect_status).replace("_", " ")}
                  </span>
                  {details[record.model_name] && <div className="muted small">{details[record.model_name]}</div>}
                </td>
                <td className="row-actions">
                  <button type="button" onClick={() => void check(record)} aria-label={`Check ${record.display_name}`}>
                    Check
                  </button>
                  {record.model_factory !== "local" && (
                    <>
                      <button
                        type="button"
                        aria-label={`Edit ${record.display_name}`}
                        onClick={() =>
                          setEditing({
                            existing: true,
                            draft: {
                              model_name: record.model_name,
                              display_name: record.display_name,
                              model_type: record.model_type,
                              base_url: record.base_url ?? "",
                              api_key: "",
                            },
                          })
                        }
                      >
                        Edit
                      </button>
                      <button type="button" aria-label={`Delete ${record.display_name}`} onClick={() => setDeleting(record)}>
                        Delete
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h2>Used for</h2>
      <div className="roles">
        {ROLES.map((role) => (
          <label key={role.key} className="field">
            <span>{role.label}</span>
            <select
              value={chosen(role.key)}
              onChange={(event) => void choose(role.key, records.find((record) => record.model_name === event.target.value))}
            >
              <option value="">(the default local engine)</option>
              {records
                .filter((record) => record.model_type === role.type)
                .map((record) => (
                  <option key={record.model_id} value={record.model_name}>
                    {record.display_name}
                  </option>
                ))}
            </select>
          </label>
        ))}
      </div>

      <h2>ModelEngine hub</h2>
      <p className="muted">Models offered by the ModelEngine hub set in the environment (MODEL_ENGINE_HOST).</p>
      <button
        type="button"
        onClick={async () => {
          try {
            setHub(await models.hub());
          } catch (failure) {
            setError((failure as Error).message);
            setHub([]);
          }
        }}
      >
        List the hub's models
      </button>
      {hub && (hub.length === 0 ? <p className="empty">The hub offers no models (or none is configured).</p> : (
        <ul className="hub">
          {hub.map((model) => (
            <li key={model.id}>
              {model.id} <span className="muted">{model.model_type ?? model.type}</span>
            </li>
          ))}
        </ul>
      ))}

      {editing && <ModelDialog draft={editing.draft} existing={editing.existing} onCancel={() => setEditing(null)} onSave={save} />}
      {deleting && (
        <ConfirmDialog
          message={`Delete the model "${deleting.display_name}"?`}
          confirm="Delete"
          onCancel={() => setDeleting(null)}
          onConfirm={async () => {
            const target = deleting;
            setDeleting(null);
            try {
              await models.remove(target.model_name);
              await refresh();
            } catch (failure) {
              setError((failure as Error).message);
            }
          }}
        />
      )}
    </div>
  );
}

function ModelDialog({
  draft,
  existing,
  onCancel,
  onSave,
}: {
  draft: Draft;
  existing: boolean;
  onCancel: () => void;
  onSave: (draft: Draft, existing: boolean) => void;
}) {
  const [value, setValue] = useState(draft);
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  const set = (key: keyof Draft) => (event: { target: { value: string } }) => setValue({ ...value, [key]: event.target.value });
  return (
    <dialog ref={dialog} className="dialog" aria-labelledby="model-dialog-title" onCancel={onCancel}>
      <form
        className="stack"
        onSubmit={(event) => {
          event.preventDefault();
          onSave(value, existing);
        }}
      >
        <h2 id="model-dialog-title">{existing ? "Edit model" : "Add a remote model"}</h2>
        <label className="field">
          <span>Model name (as the server knows it)</span>
          <input required value={value.model_name} readOnly={existing} onChange={set("model_name")} />
        </label>
        <label className="field">
          <span>Display name</span>
          <input value={value.display_name} onChange={set("display_name")} />
        </label>
        <label className="field">
          <span>Type</span>
          <select value={value.model_type} onChange={set("model_type")}>
            {TYPES.map((type) => (
              <option key={type} value={type}>
                {type}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Base URL (OpenAI-compatible, ending in /v1)</span>
          <input type="url" value={value.base_url} placeholder="http://127.0.0.1:8000/v1" onChange={set("base_url")} />
        </label>
        <label className="field">
          <span>API key{existing ? " (leave empty to keep the saved one)" : ""}</span>
          <input type="password" value={value.api_key} autoComplete="off" onChange={set("api_key")} />
        </label>
        <div className="actions">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="submit" className="primary">
            Save
          </button>
        </div>
      </form>
    </dialog>
  );
}
