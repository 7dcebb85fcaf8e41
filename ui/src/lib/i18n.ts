// The UI's two languages, English and Simplified Chinese: one dictionary each, a translator with `{name}`
// interpolation and plurals (`{count}`), and the current language. The language follows the browser
// (`navigator.languages`: any zh* is Chinese) until the person picks one in Settings; the choice is kept in
// localStorage and sets `<html lang>`. React components read it with `useT()` / `useLanguage()` and all
// re-render together when it changes; code outside React (API errors, voice) calls `t()`.
//
// The English texts are the UI's original ones, word for word: the browser end-to-end test finds elements
// by them. The Chinese dictionary must have exactly the English keys (a missing or unknown key does not
// compile), and the same `{placeholders}` (checked by i18n.test.ts).

import { useMemo, useSyncExternalStore } from "react";

export type Language = "en" | "zh";
export const LANGUAGES: readonly Language[] = ["en", "zh"];

/** A text, or a text per plural category (chosen by the `count` variable). */
type Message = string | { readonly one?: string; readonly other: string };

const en = {
  // The shell.
  "nav.label": "Screens",
  "nav.chat": "Chat",
  "nav.knowledge": "Knowledge bases",
  "nav.models": "Models",
  "nav.settings": "Settings",

  // Shared.
  "common.cancel": "Cancel",
  "common.save": "Save",
  "common.delete": "Delete",
  "common.deleteNamed": "Delete {name}",
  "common.actions": "Actions",
  "common.status": "Status",
  "common.type": "Type",
  "scores.score": "score {value}",
  "scores.keyword": "keyword {value}",
  "scores.semantic": "semantic {value}",

  // Errors made in the page (the server's own messages are shown as they come).
  "error.serverBusy": "The server is busy: {message}",
  "error.unreachable": "The server cannot be reached. Is Nexent Local running?",
  "error.conversationNotFound": "The conversation was not found",
  "error.uploadInterrupted": "The upload was interrupted.",
  "error.uploadFailed": "upload failed ({status})",
  "error.speechUnreachable": "the speech service cannot be reached",

  // Chat.
  "chat.defaultTitle": "New conversation",
  "chat.conversations": "Conversations",
  "chat.newChat": "New chat",
  "chat.searchConversations": "Search conversations",
  "chat.noConversations": "No conversations yet. Ask something to start one.",
  "chat.noTitleMatches": "No title matches.",
  "chat.rename": "Rename {title}",
  "chat.messages": "Messages",
  "chat.regenerateTitle": "Regenerate title",
  "chat.emptyConversation": "Ask a question about your documents. Answers cite the passages they come from.",
  "chat.rateAnswer": "Rate this answer",
  "chat.like": "Like",
  "chat.dislike": "Dislike",
  "chat.speaking": "Speaking…",
  "chat.readAloud": "Read aloud",
  "chat.attachments": "Attachments",
  "chat.attachment.uploading": "uploading",
  "chat.attachment.reading": "reading",
  "chat.attachment.ready": "ready",
  "chat.attachment.failed": "failed: {error}",
  "chat.attachment.notStored": "not stored",
  "chat.attachment.remove": "Remove {name}",
  "chat.attachment.defaultQuery": "Read the attached files.",
  "chat.yourQuestion": "Your question",
  "chat.attach": "Attach",
  "chat.attachFiles": "Attach files",
  "chat.dictate": "Dictate",
  "chat.stopDictation": "Stop dictation",
  "chat.stop": "Stop",
  "chat.send": "Send",
  "chat.sources": "Sources",
  "chat.noSources": "Passages the assistant finds appear here.",
  "chat.confirmDelete": 'Delete "{title}"? Its messages are removed.',
  "chat.busy": "The assistant is busy: {message}",
  "chat.tryAgainShortly": "try again shortly",
  "chat.speechToTextError": "Speech-to-text: {message}",
  "chat.microphoneError": "The microphone cannot be used: {message}",
  "chat.readAloudError": "Read aloud: {message}",
  "chat.step": "Step {number}",
  "chat.toolCalls": { one: "{count} tool call", other: "{count} tool calls" },
  "chat.stepError": "error",
  "chat.seconds": "{seconds} s",
  "chat.thinking": "Thinking…",
  "chat.citation": "Source {number}: {title}",
  "chat.newTitle": "New title",
  "chat.copy": "Copy",
  "chat.copied": "Copied",
  "chat.copyFailed": "Copy failed",
  "chat.copyCode": "Copy code",
  "chat.regenerate": "Regenerate",
  "chat.exportMarkdown": "Export Markdown",
  "chat.exportJson": "Export JSON",
  "chat.export.user": "You",
  "chat.export.assistant": "Assistant",
  "chat.export.exported": "Exported from Nexent Local on {date}",
  "chat.taskDone": "done",
  "chat.taskOpen": "not done",
  "chat.shortcuts": "Keyboard shortcuts",
  "chat.shortcut.focusQuestion": "Go to the question box",
  "chat.shortcut.stop": "Stop the answer",

  // Knowledge bases.
  "knowledge.bases": "Knowledge bases",
  "knowledge.newBase": "New knowledge base",
  "knowledge.namePlaceholder": "lower-case name",
  "knowledge.embeddingModel": "Embedding model",
  "knowledge.model.multilingualE5Small": "multilingual-e5-small: Chinese, English and about 100 languages",
  "knowledge.model.allMiniLmL6V2": "all-MiniLM-L6-v2: English only",
  "knowledge.create": "Create",
  "knowledge.noBases": "No knowledge bases yet. Create one, then drop documents into it.",
  "knowledge.files": { one: "{count} file", other: "{count} files" },
  "knowledge.chunks": { one: "{count} chunk", other: "{count} chunks" },
  "knowledge.base": "Knowledge base",
  "knowledge.chooseBase": "Choose a knowledge base on the left.",
  "knowledge.searchInChat": "Search it in chat",
  "knowledge.confirmDeleteBase": 'Delete the knowledge base "{name}" and everything indexed in it?',
  "knowledge.deleteBase": "Delete knowledge base",
  "knowledge.upload": "Upload documents (or drop files here)",
  "knowledge.chooseFiles": "Choose files…",
  "knowledge.uploads": "Uploads",
  "knowledge.uploadOf": "Upload of {name}",
  "knowledge.filesHeading": "Files",
  "knowledge.file": "File",
  "knowledge.chunksColumn": "Chunks",
  "knowledge.confirmRemoveFile": 'Remove "{file}" from {base}?',
  "knowledge.noFiles": "No files yet. Upload PDF, Word, PowerPoint, Excel, e-mail, e-book or text files.",
  "knowledge.status.WAITING": "WAITING",
  "knowledge.status.PROCESSING": "PROCESSING",
  "knowledge.status.FORWARDING": "FORWARDING",
  "knowledge.status.COMPLETED": "COMPLETED",
  "knowledge.status.FAILED": "FAILED",
  "knowledge.playground": "Search playground",
  "knowledge.tryASearch": "Try a search",
  "knowledge.query": "Query",
  "knowledge.mode": "Mode",
  "knowledge.mode.hybrid": "hybrid",
  "knowledge.mode.accurate": "keyword (accurate)",
  "knowledge.mode.semantic": "semantic",
  "knowledge.keywordWeight": "Keyword weight {weight}",
  "knowledge.results": "Results",
  "knowledge.search": "Search",
  "knowledge.resultsIn": { one: "{count} result in {ms} ms", other: "{count} results in {ms} ms" },
  "knowledge.watched": "Watched folders",
  "knowledge.watchedHelp": "Files in a watched folder are kept indexed here: added, changed and deleted as they change on disk.",
  "knowledge.folderToWatch": "Folder to watch (absolute path)",
  "knowledge.folderPlaceholder": "/home/you/Documents/notes",
  "knowledge.chooseFolderTitle": "Watch a folder",
  "knowledge.choose": "Choose…",
  "knowledge.watch": "Watch",
  "knowledge.syncNow": "Sync now",
  "knowledge.stopWatchingNamed": "Stop watching {path}",
  "knowledge.stopWatching": "Stop watching",

  // Models.
  "models.title": "Models",
  "models.addRemote": "Add a remote model",
  "models.role.llm": "Chat",
  "models.role.embedding": "Embedding",
  "models.role.stt": "Speech-to-text",
  "models.role.tts": "Text-to-speech",
  "models.status.not_detected": "not detected",
  "models.status.detecting": "detecting",
  "models.status.available": "available",
  "models.status.unavailable": "unavailable",
  "models.type.llm": "llm",
  "models.type.embedding": "embedding",
  "models.type.vlm": "vlm",
  "models.type.rerank": "rerank",
  "models.type.stt": "stt",
  "models.type.tts": "tts",
  "models.restartNotice": "Saved. The chat model is chosen when the server starts: restart it to switch.",
  "models.empty":
    "No model yet. Put a GGUF file in the models folder (python3 models/fetch.py llm) or add a remote OpenAI-compatible model.",
  "models.name": "Name",
  "models.where": "Where",
  "models.thisMachine": "this machine",
  "models.checkNamed": "Check {name}",
  "models.check": "Check",
  "models.editNamed": "Edit {name}",
  "models.edit": "Edit",
  "models.usedFor": "Used for",
  "models.defaultEngine": "(the default local engine)",
  "models.hub": "ModelEngine hub",
  "models.hubHelp": "Models offered by the ModelEngine hub set in the environment (MODEL_ENGINE_HOST).",
  "models.listHub": "List the hub's models",
  "models.hubEmpty": "The hub offers no models (or none is configured).",
  "models.confirmDelete": 'Delete the model "{name}"?',
  "models.editModel": "Edit model",
  "models.modelName": "Model name (as the server knows it)",
  "models.displayName": "Display name",
  "models.baseUrl": "Base URL (OpenAI-compatible, ending in /v1)",
  "models.apiKey": "API key",
  "models.apiKeyKeep": "API key (leave empty to keep the saved one)",

  // Settings.
  "settings.title": "Settings",
  "settings.saved": "Settings saved.",
  "settings.loading": "Loading the settings…",
  "settings.language": "Language / 语言",
  "settings.language.en": "English",
  "settings.language.zh": "中文",
  "settings.appName": "App name",
  "settings.description": "Description",
  "settings.icon": "Icon",
  "settings.iconPreset": "Preset",
  "settings.iconCustom": "Custom image URL",
  "settings.iconUrl": "Icon URL",
  "settings.save": "Save settings",
  "settings.footerBefore":
    "Knowledge bases for chat are chosen on the Knowledge bases screen, models on the Models screen. The API reference is at ",
  "settings.footerAfter": ".",
} as const satisfies Record<string, Message>;

export type MessageKey = keyof typeof en;

const zh: { readonly [K in MessageKey]: Message } = {
  "nav.label": "页面",
  "nav.chat": "对话",
  "nav.knowledge": "知识库",
  "nav.models": "模型",
  "nav.settings": "设置",

  "common.cancel": "取消",
  "common.save": "保存",
  "common.delete": "删除",
  "common.deleteNamed": "删除 {name}",
  "common.actions": "操作",
  "common.status": "状态",
  "common.type": "类型",
  "scores.score": "得分 {value}",
  "scores.keyword": "关键词 {value}",
  "scores.semantic": "语义 {value}",

  "error.serverBusy": "服务器繁忙：{message}",
  "error.unreachable": "无法连接服务器。Nexent Local 是否正在运行？",
  "error.conversationNotFound": "找不到该对话",
  "error.uploadInterrupted": "上传被中断。",
  "error.uploadFailed": "上传失败（{status}）",
  "error.speechUnreachable": "无法连接语音服务",

  "chat.defaultTitle": "新对话",
  "chat.conversations": "对话列表",
  "chat.newChat": "新建对话",
  "chat.searchConversations": "搜索对话",
  "chat.noConversations": "还没有对话。提一个问题即可开始。",
  "chat.noTitleMatches": "没有匹配的标题。",
  "chat.rename": "重命名 {title}",
  "chat.messages": "消息",
  "chat.regenerateTitle": "重新生成标题",
  "chat.emptyConversation": "就你的文档提问。回答会注明所引用的段落。",
  "chat.rateAnswer": "评价这个回答",
  "chat.like": "点赞",
  "chat.dislike": "点踩",
  "chat.speaking": "朗读中…",
  "chat.readAloud": "朗读",
  "chat.attachments": "附件",
  "chat.attachment.uploading": "上传中",
  "chat.attachment.reading": "读取中",
  "chat.attachment.ready": "就绪",
  "chat.attachment.failed": "失败：{error}",
  "chat.attachment.notStored": "未能保存",
  "chat.attachment.remove": "移除 {name}",
  "chat.attachment.defaultQuery": "请阅读附件。",
  "chat.yourQuestion": "你的问题",
  "chat.attach": "附件",
  "chat.attachFiles": "添加附件",
  "chat.dictate": "语音输入",
  "chat.stopDictation": "停止语音输入",
  "chat.stop": "停止",
  "chat.send": "发送",
  "chat.sources": "来源",
  "chat.noSources": "助手找到的段落会显示在这里。",
  "chat.confirmDelete": "删除“{title}”？其中的消息将被移除。",
  "chat.busy": "助手正忙：{message}",
  "chat.tryAgainShortly": "请稍后再试",
  "chat.speechToTextError": "语音识别：{message}",
  "chat.microphoneError": "无法使用麦克风：{message}",
  "chat.readAloudError": "朗读：{message}",
  "chat.step": "步骤 {number}",
  "chat.toolCalls": "{count} 次工具调用",
  "chat.stepError": "出错",
  "chat.seconds": "{seconds} 秒",
  "chat.thinking": "思考中…",
  "chat.citation": "来源 {number}：{title}",
  "chat.newTitle": "新标题",
  "chat.copy": "复制",
  "chat.copied": "已复制",
  "chat.copyFailed": "复制失败",
  "chat.copyCode": "复制代码",
  "chat.regenerate": "重新生成",
  "chat.exportMarkdown": "导出 Markdown",
  "chat.exportJson": "导出 JSON",
  "chat.export.user": "我",
  "chat.export.assistant": "助手",
  "chat.export.exported": "导出自 Nexent Local，{date}",
  "chat.taskDone": "已完成",
  "chat.taskOpen": "未完成",
  "chat.shortcuts": "键盘快捷键",
  "chat.shortcut.focusQuestion": "转到提问框",
  "chat.shortcut.stop": "停止回答",

  "knowledge.bases": "知识库",
  "knowledge.newBase": "新建知识库",
  "knowledge.namePlaceholder": "小写名称",
  "knowledge.embeddingModel": "向量模型",
  "knowledge.model.multilingualE5Small": "multilingual-e5-small：中文、英文等约 100 种语言",
  "knowledge.model.allMiniLmL6V2": "all-MiniLM-L6-v2：仅英文",
  "knowledge.create": "创建",
  "knowledge.noBases": "还没有知识库。先创建一个，再把文档拖进去。",
  "knowledge.files": "{count} 个文件",
  "knowledge.chunks": "{count} 个分块",
  "knowledge.base": "知识库内容",
  "knowledge.chooseBase": "请在左侧选择一个知识库。",
  "knowledge.searchInChat": "在对话中检索",
  "knowledge.confirmDeleteBase": "删除知识库“{name}”及其中已索引的全部内容？",
  "knowledge.deleteBase": "删除知识库",
  "knowledge.upload": "上传文档（或将文件拖放到这里）",
  "knowledge.chooseFiles": "选择文件…",
  "knowledge.uploads": "上传",
  "knowledge.uploadOf": "{name} 的上传进度",
  "knowledge.filesHeading": "文件",
  "knowledge.file": "文件",
  "knowledge.chunksColumn": "分块",
  "knowledge.confirmRemoveFile": "从 {base} 中移除“{file}”？",
  "knowledge.noFiles": "还没有文件。可上传 PDF、Word、PowerPoint、Excel、电子邮件、电子书或文本文件。",
  "knowledge.status.WAITING": "等待中",
  "knowledge.status.PROCESSING": "处理中",
  "knowledge.status.FORWARDING": "写入中",
  "knowledge.status.COMPLETED": "已完成",
  "knowledge.status.FAILED": "失败",
  "knowledge.playground": "检索试验",
  "knowledge.tryASearch": "试一次检索",
  "knowledge.query": "检索内容",
  "knowledge.mode": "方式",
  "knowledge.mode.hybrid": "混合",
  "knowledge.mode.accurate": "关键词（精确）",
  "knowledge.mode.semantic": "语义",
  "knowledge.keywordWeight": "关键词权重 {weight}",
  "knowledge.results": "结果数",
  "knowledge.search": "检索",
  "knowledge.resultsIn": "{count} 条结果，用时 {ms} 毫秒",
  "knowledge.watched": "监视的文件夹",
  "knowledge.watchedHelp": "监视文件夹中的文件会保持索引在这里：磁盘上新增、修改或删除文件时随之更新。",
  "knowledge.folderToWatch": "要监视的文件夹（绝对路径）",
  "knowledge.folderPlaceholder": "/home/you/Documents/notes",
  "knowledge.chooseFolderTitle": "监视文件夹",
  "knowledge.choose": "选择…",
  "knowledge.watch": "监视",
  "knowledge.syncNow": "立即同步",
  "knowledge.stopWatchingNamed": "停止监视 {path}",
  "knowledge.stopWatching": "停止监视",

  "models.title": "模型",
  "models.addRemote": "添加远程模型",
  "models.role.llm": "对话",
  "models.role.embedding": "向量化",
  "models.role.stt": "语音识别",
  "models.role.tts": "语音合成",
  "models.status.not_detected": "未检测",
  "models.status.detecting": "检测中",
  "models.status.available": "可用",
  "models.status.unavailable": "不可用",
  "models.type.llm": "大语言模型",
  "models.type.embedding": "向量模型",
  "models.type.vlm": "视觉语言模型",
  "models.type.rerank": "重排序模型",
  "models.type.stt": "语音识别模型",
  "models.type.tts": "语音合成模型",
  "models.restartNotice": "已保存。对话模型在服务器启动时选定：重启服务器后生效。",
  "models.empty": "还没有模型。请将 GGUF 文件放入 models 文件夹（python3 models/fetch.py llm），或添加一个兼容 OpenAI 的远程模型。",
  "models.name": "名称",
  "models.where": "位置",
  "models.thisMachine": "本机",
  "models.checkNamed": "检测 {name}",
  "models.check": "检测",
  "models.editNamed": "编辑 {name}",
  "models.edit": "编辑",
  "models.usedFor": "用途",
  "models.defaultEngine": "（默认的本地引擎）",
  "models.hub": "ModelEngine 模型中心",
  "models.hubHelp": "由环境变量（MODEL_ENGINE_HOST）指定的 ModelEngine 模型中心提供的模型。",
  "models.listHub": "列出模型中心的模型",
  "models.hubEmpty": "模型中心没有提供模型（或尚未配置）。",
  "models.confirmDelete": "删除模型“{name}”？",
  "models.editModel": "编辑模型",
  "models.modelName": "模型名称（服务端使用的名称）",
  "models.displayName": "显示名称",
  "models.baseUrl": "Base URL（兼容 OpenAI，以 /v1 结尾）",
  "models.apiKey": "API 密钥",
  "models.apiKeyKeep": "API 密钥（留空则保留已保存的密钥）",

  "settings.title": "设置",
  "settings.saved": "设置已保存。",
  "settings.loading": "正在加载设置…",
  "settings.language": "Language / 语言",
  "settings.language.en": "English",
  "settings.language.zh": "中文",
  "settings.appName": "应用名称",
  "settings.description": "描述",
  "settings.icon": "图标",
  "settings.iconPreset": "预设",
  "settings.iconCustom": "自定义图片 URL",
  "settings.iconUrl": "图标 URL",
  "settings.save": "保存设置",
  "settings.footerBefore": "对话使用的知识库在“知识库”页面选择，模型在“模型”页面选择。API 参考文档位于 ",
  "settings.footerAfter": "。",
};

export const DICTIONARIES: { readonly [L in Language]: { readonly [K in MessageKey]: Message } } = { en, zh };

// The variables a message takes, from its `{placeholders}`: a call without them does not compile.
type Placeholders<S> = S extends `${string}{${infer Name}}${infer Rest}` ? Name | Placeholders<Rest> : never;
type Texts<M> = M extends string ? M : M extends { readonly other: infer Other } ? Other | (M extends { readonly one: infer One } ? One : never) : never;
export type Variables<K extends MessageKey> = Placeholders<Texts<(typeof en)[K]>>;
export type TranslateArgs<K extends MessageKey> = [Variables<K>] extends [never]
  ? []
  : [variables: { readonly [V in Variables<K>]: string | number }];
/** The keys of messages without variables (for tables of labels). */
export type PlainKey = { [K in MessageKey]: [Variables<K>] extends [never] ? K : never }[MessageKey];
export type Translate = <K extends MessageKey>(key: K, ...args: TranslateArgs<K>) => string;

const pluralRules: { [L in Language]?: Intl.PluralRules } = {};
function pluralCategory(language: Language, count: number): Intl.LDMLPluralRule {
  const rules = (pluralRules[language] ??= new Intl.PluralRules(htmlLang(language)));
  return rules.select(count);
}

/** The text of `key` in `language`, its `{placeholders}` filled from `variables`. */
export function translate<K extends MessageKey>(language: Language, key: K, ...args: TranslateArgs<K>): string {
  const variables = args[0] as Readonly<Record<string, string | number>> | undefined;
  const message: Message = DICTIONARIES[language][key] ?? en[key];
  let text: string;
  if (typeof message === "string") {
    text = message;
  } else {
    const category = pluralCategory(language, Number(variables?.count ?? 0));
    text = (category === "one" ? message.one : undefined) ?? message.other;
  }
  return text.replace(/\{(\w+)\}/g, (whole, name: string) =>
    variables && Object.hasOwn(variables, name) ? String(variables[name]) : whole,
  );
}

/** A translator bound to one language. */
export function translator(language: Language): Translate {
  return (key, ...args) => translate(language, key, ...args);
}

/** Nexent's default title of a new conversation; the server keeps it, the English screen shows it translated. */
export const DEFAULT_CONVERSATION_TITLE = "新对话";

/** A conversation's title as shown: the default title in the screen's language, any other as it is. */
export function displayTitle(title: string, language: Language): string {
  return title === DEFAULT_CONVERSATION_TITLE ? translate(language, "chat.defaultTitle") : title;
}

/** `en` / `zh` from a stored value; null for anything else. */
export function parseLanguage(value: string | null | undefined): Language | null {
  return value === "en" || value === "zh" ? value : null;
}

/** The browser's preference: Chinese when any of its languages is a zh* one, English otherwise. */
export function detectLanguage(languages: readonly (string | null | undefined)[] | null | undefined): Language {
  return (languages ?? []).some((language) => (language ?? "").trim().toLowerCase().startsWith("zh")) ? "zh" : "en";
}

/** The value of `<html lang>` for a language. */
export function htmlLang(language: Language): string {
  return language === "zh" ? "zh-CN" : "en";
}

export const STORAGE_KEY = "nexent-language";

export interface LanguageEnvironment {
  /** Where the choice is remembered (localStorage in the page). */
  storage?: Pick<Storage, "getItem" | "setItem"> | null;
  /** The browser's languages, most preferred first (`navigator.languages`). */
  languages?: readonly string[] | null;
  /** Receives `lang` (`document.documentElement`). */
  root?: { lang: string } | null;
}

export interface LanguageStore {
  get(): Language;
  /** Picks a language: remembered, applied to `<html lang>`, every subscriber told. */
  set(language: Language): void;
  subscribe(listener: () => void): () => void;
}

function readStored(storage: LanguageEnvironment["storage"]): Language | null {
  try {
    return parseLanguage(storage?.getItem(STORAGE_KEY));
  } catch {
    return null; // Storage can be refused (privacy settings): the browser's language then.
  }
}

/** The current language: the stored choice, else the browser's. */
export function createLanguageStore(environment: LanguageEnvironment): LanguageStore {
  let current = readStored(environment.storage) ?? detectLanguage(environment.languages);
  const listeners = new Set<() => void>();
  const apply = () => {
    if (environment.root) environment.root.lang = htmlLang(current);
  };
  apply();
  return {
    get: () => current,
    set(language) {
      try {
        environment.storage?.setItem(STORAGE_KEY, language);
      } catch {
        // Not remembered, but still applied to this page.
      }
      if (language === current) return;
      current = language;
      apply();
      for (const listener of [...listeners]) listener();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

function browserEnvironment(): LanguageEnvironment {
  let storage: Storage | null = null;
  try {
    storage = typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    storage = null;
  }
  const languages =
    typeof navigator === "undefined" ? [] : navigator.languages?.length ? navigator.languages : [navigator.language];
  const root = typeof document === "undefined" ? null : document.documentElement;
  return { storage, languages, root };
}

/** The page's language store. */
export const languageStore = createLanguageStore(browserEnvironment());

// A choice made in another tab of the same app applies here too.
if (typeof window !== "undefined") {
  window.addEventListener("storage", (event) => {
    const language = event.key === STORAGE_KEY ? parseLanguage(event.newValue) : null;
    if (language) languageStore.set(language);
  });
}

export const getLanguage = (): Language => languageStore.get();
export const setLanguage = (language: Language): void => languageStore.set(language);

/** A text in the current language, for code outside React components. */
export function t<K extends MessageKey>(key: K, ...args: TranslateArgs<K>): string {
  return translate(languageStore.get(), key, ...args);
}

/** The current language; the component re-renders when it changes. */
export function useLanguage(): Language {
  return useSyncExternalStore(languageStore.subscribe, languageStore.get, languageStore.get);
}

/** The translator of the current language; the component re-renders when the language changes. */
export function useT(): Translate {
  const language = useLanguage();
  return useMemo(() => translator(language), [language]);
}
