// The UI's only way to the backend: `/api` on the page's own origin (the Tauri window loads the same
// server, so the same code runs in both). Request bodies are typed from the server's OpenAPI document
// (`schema.d.ts`, generated); responses are Nexent's shapes, described where they are read.

import type { components } from "./schema";
import { t } from "../lib/i18n";

export type Schemas = components["schemas"];

/** An error a person can read: the server's `{"message"}` when there is one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function errorFrom(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { message?: string; detail?: unknown; error?: string };
    message = body.message ?? body.error ?? (typeof body.detail === "string" ? body.detail : message);
  } catch {
    // Not JSON: the status line says enough.
  }
  if (response.status === 503) message = t("error.serverBusy", { message });
  return new ApiError(message, response.status);
}

export async function api<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const { json, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (json !== undefined) headers.set("content-type", "application/json");
  const token = apiToken();
  if (token) headers.set("authorization", `Bearer ${token}`);
  let response: Response;
  try {
    response = await fetch(path, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body });
  } catch {
    throw new ApiError(t("error.unreachable"), 0);
  }
  if (!response.ok) throw await errorFrom(response);
  return (await response.json()) as T;
}

/** The API token, when the server needs one: the desktop shell passes it in the URL (`#token=`), a browser
 * user types it once; either way it stays in this tab's session storage. */
export function apiToken(): string | null {
  const fromHash = new URLSearchParams(window.location.hash.split("?")[1] ?? "").get("token");
  if (fromHash) sessionStorage.setItem("nexent-token", fromHash);
  return sessionStorage.getItem("nexent-token");
}

/** Nexent's conversation envelope `{code, message, data}`. */
interface Envelope<T> {
  code: number;
  message: string;
  data: T;
}

async function enveloped<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const body = await api<Envelope<T>>(path, init);
  if (body.code !== 0 && body.code !== 200) throw new ApiError(body.message, body.code);
  return body.data;
}

export interface Conversation {
  conversation_id: number;
  conversation_title: string;
  create_time: number;
  update_time: number;
}

export interface HistoryMessage {
  role: "user" | "assistant";
  message: string | { type: string; content: string }[];
  message_id: number;
  opinion_flag?: "Y" | "N" | null;
  search?: import("../lib/agentStream").Source[];
}

export const conversations = {
  list: () => enveloped<Conversation[]>("/api/conversation/list"),
  create: (title?: string) =>
    enveloped<Conversation>("/api/conversation/create", {
      method: "PUT",
      json: (title ? { title } : {}) satisfies Schemas["CreateConversationRequest"],
    }),
  rename: (conversation_id: number, name: string) =>
    enveloped<boolean>("/api/conversation/rename", {
      method: "POST",
      json: { conversation_id, name } satisfies Schemas["RenameConversationRequest"],
    }),
  remove: (id: number) => enveloped<unknown>(`/api/conversation/${id}`, { method: "DELETE" }),
  /** Nexent's shape: `data` is a one-element list (its client reads `data[0]`). */
  history: async (id: number) => {
    const [history] = await enveloped<(Omit<Conversation, "conversation_id"> & { conversation_id: string; message: HistoryMessage[] })[]>(
      `/api/conversation/${id}`,
    );
    if (!history) throw new ApiError(t("error.conversationNotFound"), 404);
    return history;
  },
  generateTitle: (conversation_id: number, history: { role: string; content: string }[]) =>
    enveloped<string>("/api/conversation/generate_title", {
      method: "POST",
      // `history` is a list of free-form objects in the schema (`{role, content}` here).
      json: { conversation_id, history },
    }),
  opinion: (message_id: number, opinion: "Y" | "N" | null) =>
    enveloped<unknown>("/api/conversation/message/update_opinion", {
      method: "POST",
      json: { message_id, opinion } satisfies Schemas["OpinionRequest"],
    }),
};

export interface IndexSummary {
  name: string;
  stats?: { base_info?: { doc_count: number; chunk_count: number } };
}

export interface IndexedFile {
  path_or_url: string;
  file?: string;
  filename?: string;
  file_size?: number;
  status: string;
  chunk_count?: number;
  error_reason?: string | null;
  chunks?: { id: string; title?: string; content: string }[];
}

export interface IndexInfo {
  base_info: { doc_count: number; chunk_count: number; embedding_model: string; store_size: string };
  files: IndexedFile[] | null;
}

export interface SearchHit {
  title?: string;
  filename?: string;
  path_or_url?: string;
  content?: string;
  score?: number;
  score_details?: { accurate?: number; semantic?: number };
  index?: string;
}

export const knowledge = {
  list: async (): Promise<IndexSummary[]> => {
    const body = await api<{ indices: string[]; indices_info?: { name: string; stats?: IndexSummary["stats"] }[] }>(
      "/api/indices?include_stats=true",
    );
    return body.indices_info ?? body.indices.map((name) => ({ name }));
  },
  /** `embeddingModel`: one of `embeddingModels()`; the server's default when absent. */
  create: (name: string, embeddingModel?: string) =>
    api<unknown>(
      `/api/indices/${encodeURIComponent(name)}` +
        (embeddingModel ? `?embedding_model=${encodeURIComponent(embeddingModel)}` : ""),
      { method: "POST" },
    ),
  /** The embedding models a new base may be built with, the server's default first. */
  embeddingModels: async (): Promise<string[]> => {
    const body = await api<{ data: { id: string; type?: string }[] }>("/v1/models");
    return body.data.filter((model) => model.type === "embed").map((model) => model.id);
  },
  remove: (name: string) => api<unknown>(`/api/indices/${encodeURIComponent(name)}`, { method: "DELETE" }),
  info: (name: string) =>
    api<IndexInfo>(`/api/indices/${encodeURIComponent(name)}/info?include_files=true&include_chunks=true`),
  removeFile: (name: string, pathOrUrl: string) =>
    api<unknown>(
      `/api/indices/${encodeURIComponent(name)}/documents?path_or_url=${encodeURIComponent(pathOrUrl)}`,
      { method: "DELETE" },
    ),
  search: (mode: "accurate" | "semantic" | "hybrid", body: Schemas["SearchBody"]) =>
    api<{ results: SearchHit[]; total: number; query_time_ms: number }>(`/api/indices/search/${mode}`, {
      method: "POST",
      json: body,
    }),
};

export interface AppConfig {
  app: Record<string, unknown>;
  models: Record<string, unknown>;
  data?: { selectedKbNames?: string[]; selectedKbModels?: string[]; selectedKbSources?: string[] };
}

export const config = {
  load: async (): Promise<AppConfig> => {
    const body = await api<{ config: AppConfig } & Partial<AppConfig>>("/api/config/load_config");
    return body.config ?? (body as AppConfig);
  },
  save: (value: AppConfig) => api<unknown>("/api/config/save_config", { method: "POST", json: value }),
};

/** Uploads one file into a knowledge base, reporting progress (fetch cannot: XMLHttpRequest can). */
export function uploadToKnowledgeBase(
  indexName: string,
  file: File,
  onProgress: (fraction: number) => void,
): Promise<{ task_id?: string }> {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("index_name", indexName);
    const request = new XMLHttpRequest();
    request.open("POST", "/api/file/upload");
    const token = apiToken();
    if (token) request.setRequestHeader("authorization", `Bearer ${token}`);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.onerror = () => reject(new ApiError(t("error.uploadInterrupted"), 0));
    request.onload = () => {
      let body: { process_tasks?: { task_id?: string; task_ids?: string[] }; message?: string; error?: string } = {};
      try {
        body = JSON.parse(request.responseText);
      } catch {
        // Reported below with the status.
      }
      if (request.status >= 200 && request.status < 300) {
        onProgress(1);
        resolve({ task_id: body.process_tasks?.task_id ?? body.process_tasks?.task_ids?.[0] });
      } else {
        reject(new ApiError(body.message ?? body.error ?? t("error.uploadFailed", { status: request.status }), request.status));
      }
    };
    request.send(form);
  });
}

export interface ModelRecord {
  model_id: number;
  model_name: string;
  display_name: string;
  model_type: string;
  model_factory: string;
  base_url: string;
  api_key: string;
  connect_status: string;
}

export interface HubModel {
  id: string;
  model_type?: string;
  type?: string;
}

export const models = {
  list: () => enveloped<ModelRecord[]>("/api/model/list"),
  create: (body: Schemas["ModelRequest"]) => enveloped<unknown>("/api/model/create", { method: "POST", json: body }),
  update: (body: Schemas["ModelRequest"]) => enveloped<unknown>("/api/model/update", { method: "POST", json: body }),
  remove: (model_name: string) =>
    enveloped<unknown>("/api/model/delete", { method: "POST", json: { model_name } satisfies Schemas["ModelNameBody"] }),
  healthCheck: (model_name: string) =>
    enveloped<{ connectivity: boolean; connect_status: string; desc?: string }>(
      `/api/model/healthcheck?model_name=${encodeURIComponent(model_name)}`,
    ),
  hub: () => enveloped<HubModel[]>("/api/me/model/list"),
};

export interface Attachment {
  name: string;
  size: number;
  type: string;
  status: "uploading" | "reading" | "ready" | "failed";
  progress?: string;
  object_name?: string;
  url?: string;
  description?: string;
  error?: string;
}

/** Stores chat attachments (`/api/file/storage`, folder `attachments`); results in the files' order. */
export async function storeAttachments(files: File[]): Promise<{ success?: boolean; object_name?: string; url?: string; error?: string }[]> {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  form.append("folder", "attachments");
  const body = await api<{ results: { success?: boolean; object_name?: string; url?: string; error?: string }[] }>(
    "/api/file/storage",
    { method: "POST", body: form },
  );
  return body.results;
}

/** Reads attachments for the agent (`/api/file/preprocess`, SSE): each file's text or its error. */
export async function describeAttachments(
  files: File[],
  query: string,
  onEvent: (event: { type: string; filename?: string; description?: string; message?: string; progress?: number }) => void,
): Promise<void> {
  const form = new FormData();
  form.append("query", query);
  for (const file of files) form.append("files", file, file.name);
  const headers: Record<string, string> = {};
  const token = apiToken();
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch("/api/file/preprocess", { method: "POST", body: form, headers });
  if (!response.ok || !response.body) throw await errorFrom(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let newline = buffer.indexOf("\n");
    while (newline >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf("\n");
      if (!line.startsWith("data:")) continue;
      try {
        onEvent(JSON.parse(line.slice(5).trim()));
      } catch {
        // Not a message.
      }
    }
  }
}

export interface WatchedFolder {
  id: string;
  path: string;
  index_name: string;
  file_count: number;
  created_at: string;
}

export const watchedFolders = {
  list: async () => (await api<{ folders: WatchedFolder[] }>("/api/watched_folders")).folders,
  add: (path: string, index_name: string) =>
    api<WatchedFolder>("/api/watched_folders", {
      method: "POST",
      json: { path, index_name } satisfies Schemas["WatchBody"],
    }),
  remove: (id: string, removeDocuments: boolean) =>
    api<unknown>(`/api/watched_folders/${encodeURIComponent(id)}?remove_documents=${removeDocuments}`, { method: "DELETE" }),
  sync: (id: string) => api<WatchedFolder>(`/api/watched_folders/${encodeURIComponent(id)}/sync`, { method: "POST" }),
};
