// Models: the local models (GGUF files, the embedder, the speech engines) and remote OpenAI-compatible
// ones; add, edit, delete, health checks with status colours, the ModelEngine hub's list, and which model
// the app uses for each role (Config Sync).

import { useCallback, useEffect, useRef, useState } from "react";
import { config, models, type AppConfig, type HubModel, type ModelRecord } from "../api/client";
import { ConfirmDialog, ErrorAlert } from "./Chat";
import { useT, type PlainKey, type Translate } from "../lib/i18n";

const TYPES = ["llm", "embedding", "vlm", "rerank", "stt", "tts"] as const;
const ROLES: { key: string; label: PlainKey; type: string }[] = [
  { key: "llm", label: "models.role.llm", type: "llm" },
  { key: "embedding", label: "models.role.embedding", type: "embedding" },
  { key: "stt", label: "models.role.stt", type: "stt" },
  { key: "tts", label: "models.role.tts", type: "tts" },
];

const TYPE_LABELS: Record<string, PlainKey | undefined> = {
  llm: "models.type.llm",
  embedding: "models.type.embedding",
  vlm: "models.type.vlm",
  rerank: "models.type.rerank",
  stt: "models.type.stt",
  tts: "models.type.tts",
};

/** A model type as shown: the code in English (`llm`), a name in Chinese; an unknown type as it is. */
function typeLabel(type: string | undefined, t: Translate): string {
  const key = type ? TYPE_LABELS[type] : undefined;
  return key ? t(key) : type ?? "";
}

const STATUS_LABELS: Record<string, PlainKey | undefined> = {
  not_detected: "models.status.not_detected",
  detecting: "models.status.detecting",
  available: "models.status.available",
  unavailable: "models.status.unavailable",
};

interface Draft {
  model_name: string;
  display_name: string;
  model_type: string;
  base_url: string;
  api_key: string;
}

/** The server sends Nexent's status constants (its client colours only those); the screen shows them in
 *  its language and styles them by an English key. English values are understood as well. */
const STATUS_KEYS: Record<string, string> = { 未检测: "not_detected", 检测中: "detecting", 可用: "available", 不可用: "unavailable" };
function statusKey(status: string): string {
  return STATUS_KEYS[status] ?? (status || "not_detected");
}

function statusLabel(status: string, t: Translate): string {
  const key = statusKey(status);
  const label = STATUS_LABELS[key];
  return label ? t(label) : key.replace("_", " ");
}

const EMPTY: Draft = { model_name: "", display_name: "", model_type: "llm", base_url: "", api_key: "" };

export function ModelsScreen() {
  const t = useT();
  const [records, setRecords] = useState<ModelRecord[]>([]);
  const [details, setDetails] = useState<Record<string, string>>({});
  const [editing, setEditing] = useState<{ draft: Draft; existing: boolean } | null>(null);
  const [deleting, setDeleting] = useState<ModelRecord | null>(null);
  const [hub, setHub] = useState<HubModel[] | null>(null);
  const [settings, setSettings] = useState<AppConfig | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<PlainKey | null>(null);

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
      setNotice("models.restartNotice");
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
        <h1>{t("models.title")}</h1>
        <button type="button" className="primary" onClick={() => setEditing({ draft: { ...EMPTY }, existing: false })}>
          {t("models.addRemote")}
        </button>
      </div>
      <ErrorAlert message={error} />
      {notice && <p className="notice">{t(notice)}</p>}
      {records.length === 0 ? (
        <p className="empty">{t("models.empty")}</p>
      ) : (
        <table className="files">
          <thead>
            <tr>
              <th scope="col">{t("models.name")}</th>
              <th scope="col">{t("common.type")}</th>
              <th scope="col">{t("models.where")}</th>
              <th scope="col">{t("common.status")}</th>
              <th scope="col">
                <span className="visually-hidden">{t("common.actions")}</span>
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
                <td>{typeLabel(record.model_type, t)}</td>
                <td className="muted">{record.model_factory === "local" ? t("models.thisMachine") : record.base_url || record.model_factory}</td>
                <td>
                  <span className={`status status-${statusKey(record.connect_status)}`} data-testid="model-status">
                    {statusLabel(record.connect_status, t)}
                  </span>
                  {details[record.model_name] && <div className="muted small">{details[record.model_name]}</div>}
                </td>
                <td className="row-actions">
                  <button type="button" onClick={() => void check(record)} aria-label={t("models.checkNamed", { name: record.display_name })}>
                    {t("models.check")}
                  </button>
                  {record.model_factory !== "local" && (
                    <>
                      <button
                        type="button"
                        aria-label={t("models.editNamed", { name: record.display_name })}
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
                        {t("models.edit")}
                      </button>
                      <button type="button" aria-label={t("common.deleteNamed", { name: record.display_name })} onClick={() => setDeleting(record)}>
                        {t("common.delete")}
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h2>{t("models.usedFor")}</h2>
      <div className="roles">
        {ROLES.map((role) => (
          <label key={role.key} className="field">
            <span>{t(role.label)}</span>
            <select
              value={chosen(role.key)}
              onChange={(event) => void choose(role.key, records.find((record) => record.model_name === event.target.value))}
            >
              <option value="">{t("models.defaultEngine")}</option>
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

      <h2>{t("models.hub")}</h2>
      <p className="muted">{t("models.hubHelp")}</p>
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
        {t("models.listHub")}
      </button>
      {hub && (hub.length === 0 ? <p className="empty">{t("models.hubEmpty")}</p> : (
        <ul className="hub">
          {hub.map((model) => (
            <li key={model.id}>
              {model.id} <span className="muted">{typeLabel(model.model_type ?? model.type, t)}</span>
            </li>
          ))}
        </ul>
      ))}

      {editing && <ModelDialog draft={editing.draft} existing={editing.existing} onCancel={() => setEditing(null)} onSave={save} />}
      {deleting && (
        <ConfirmDialog
          message={t("models.confirmDelete", { name: deleting.display_name })}
          confirm={t("common.delete")}
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
  const t = useT();
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
        <h2 id="model-dialog-title">{existing ? t("models.editModel") : t("models.addRemote")}</h2>
        <label className="field">
          <span>{t("models.modelName")}</span>
          <input required value={value.model_name} readOnly={existing} onChange={set("model_name")} />
        </label>
        <label className="field">
          <span>{t("models.displayName")}</span>
          <input value={value.display_name} onChange={set("display_name")} />
        </label>
        <label className="field">
          <span>{t("common.type")}</span>
          <select value={value.model_type} onChange={set("model_type")}>
            {TYPES.map((type) => (
              <option key={type} value={type}>
                {typeLabel(type, t)}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>{t("models.baseUrl")}</span>
          <input type="url" value={value.base_url} placeholder="http://127.0.0.1:8000/v1" onChange={set("base_url")} />
        </label>
        <label className="field">
          <span>{existing ? t("models.apiKeyKeep") : t("models.apiKey")}</span>
          <input type="password" value={value.api_key} autoComplete="off" onChange={set("api_key")} />
        </label>
        <div className="actions">
          <button type="button" onClick={onCancel}>
            {t("common.cancel")}
          </button>
          <button type="submit" className="primary">
            {t("common.save")}
          </button>
        </div>
      </form>
    </dialog>
  );
}
