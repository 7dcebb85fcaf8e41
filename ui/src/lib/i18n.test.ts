import { describe, expect, it, vi } from "vitest";
import {
  DEFAULT_CONVERSATION_TITLE,
  DICTIONARIES,
  STORAGE_KEY,
  createLanguageStore,
  detectLanguage,
  displayTitle,
  htmlLang,
  parseLanguage,
  translate,
  translator,
  type MessageKey,
} from "./i18n";
import { dictationParams } from "./voice";

function memoryStorage(initial: Record<string, string> = {}) {
  const values = new Map(Object.entries(initial));
  return {
    getItem: (key: string) => values.get(key) ?? null,
    setItem: (key: string, value: string) => void values.set(key, value),
    values,
  };
}

const placeholders = (message: unknown): string[] => {
  const texts = typeof message === "string" ? [message] : Object.values(message as Record<string, string>);
  return [...new Set(texts.flatMap((text) => [...text.matchAll(/\{(\w+)\}/g)].map((match) => match[1])))].sort();
};

describe("dictionaries", () => {
  it("have the same keys and the same placeholders in both languages", () => {
    const keys = Object.keys(DICTIONARIES.en).sort();
    expect(Object.keys(DICTIONARIES.zh).sort()).toEqual(keys);
    for (const key of keys as MessageKey[]) {
      expect(placeholders(DICTIONARIES.zh[key]), key).toEqual(placeholders(DICTIONARIES.en[key]));
      for (const text of [DICTIONARIES.en[key], DICTIONARIES.zh[key]].flatMap((message) =>
        typeof message === "string" ? [message] : Object.values(message),
      )) {
        expect(text.trim(), key).not.toBe("");
      }
    }
  });

  it("keep the English texts the browser test finds elements by, and have their Chinese counterparts", () => {
    const en = translator("en");
    const zh = translator("zh");
    expect([en("nav.chat"), en("nav.knowledge"), en("nav.models"), en("nav.settings")]).toEqual([
      "Chat",
      "Knowledge bases",
      "Models",
      "Settings",
    ]);
    expect(en("knowledge.newBase")).toBe("New knowledge base");
    expect(en("knowledge.create")).toBe("Create");
    expect(en("knowledge.upload")).toBe("Upload documents (or drop files here)");
    expect(en("knowledge.folderToWatch")).toBe("Folder to watch (absolute path)");
    expect(en("knowledge.stopWatchingNamed", { path: "/tmp/a" })).toBe("Stop watching /tmp/a");
    expect(en("knowledge.status.COMPLETED")).toBe("COMPLETED");
    expect(en("chat.emptyConversation")).toMatch(/^Ask a question about your documents/);
    expect(en("chat.noConversations")).toMatch(/^No conversations yet/);
    expect(en("chat.attachment.ready")).toBe("ready");
    expect(en("chat.rename", { title: "x" })).toBe("Rename x");
    expect(en("common.deleteNamed", { name: "Orchard questions" })).toBe("Delete Orchard questions");
    expect(en("models.checkNamed", { name: "Remote Qwen" })).toBe("Check Remote Qwen");
    expect(en("models.modelName")).toBe("Model name (as the server knows it)");
    expect(en("settings.saved")).toBe("Settings saved.");
    // The Chinese pass of e2e/run.mjs looks for these.
    expect([zh("nav.chat"), zh("nav.knowledge"), zh("nav.models"), zh("nav.settings")]).toEqual(["对话", "知识库", "模型", "设置"]);
    expect(zh("settings.language")).toBe("Language / 语言");
    expect(zh("chat.like")).toBe("点赞");
    expect(zh("chat.yourQuestion")).toBe("你的问题");
    expect(zh("knowledge.status.COMPLETED")).toBe("已完成");
    expect(zh("knowledge.query")).toBe("检索内容");
    expect(zh("knowledge.search")).toBe("检索");
    expect(zh("models.status.unavailable")).toBe("不可用");
    expect(zh("settings.appName")).toBe("应用名称");
  });
});

describe("translate", () => {
  it("fills placeholders", () => {
    expect(translate("en", "chat.citation", { number: 2, title: "Orchard" })).toBe("Source 2: Orchard");
    expect(translate("zh", "chat.citation", { number: 2, title: "果园" })).toBe("来源 2：果园");
    expect(translate("en", "chat.send")).toBe("Send");
    expect(translate("zh", "chat.send")).toBe("发送");
  });

  it("picks the plural form by count (Chinese has one form)", () => {
    expect(translate("en", "knowledge.files", { count: 1 })).toBe("1 file");
    expect(translate("en", "knowledge.files", { count: 0 })).toBe("0 files");
    expect(translate("en", "knowledge.files", { count: 3 })).toBe("3 files");
    expect(translate("en", "knowledge.resultsIn", { count: 1, ms: "2.5" })).toBe("1 result in 2.5 ms");
    expect(translate("zh", "knowledge.files", { count: 1 })).toBe("1 个文件");
    expect(translate("zh", "knowledge.resultsIn", { count: 4, ms: "2.5" })).toBe("4 条结果，用时 2.5 毫秒");
  });

  it("leaves a placeholder without a value visible rather than dropping it", () => {
    const loose = translate as (language: "en", key: MessageKey, variables?: object) => string;
    expect(loose("en", "chat.rename", {})).toBe("Rename {title}");
  });
});

describe("displayTitle", () => {
  it("shows Nexent's default title in the screen's language and any other title as it is", () => {
    expect(DEFAULT_CONVERSATION_TITLE).toBe("新对话");
    expect(displayTitle("新对话", "en")).toBe("New conversation");
    expect(displayTitle("新对话", "zh")).toBe("新对话");
    expect(displayTitle("Orchard questions", "en")).toBe("Orchard questions");
    expect(displayTitle("Orchard questions", "zh")).toBe("Orchard questions");
    expect(displayTitle("新对话 2", "en")).toBe("新对话 2");
  });
});

describe("detectLanguage", () => {
  it("is Chinese when any of the browser's languages is a zh* one", () => {
    expect(detectLanguage(["zh-CN"])).toBe("zh");
    expect(detectLanguage(["zh"])).toBe("zh");
    expect(detectLanguage(["zh-TW", "en"])).toBe("zh");
    expect(detectLanguage(["en-US", "zh-Hans-CN"])).toBe("zh");
    expect(detectLanguage(["ZH-cn"])).toBe("zh");
  });

  it("falls back to English", () => {
    expect(detectLanguage(["en-US", "en"])).toBe("en");
    expect(detectLanguage(["fr-FR", "de"])).toBe("en");
    expect(detectLanguage([])).toBe("en");
    expect(detectLanguage(undefined)).toBe("en");
    expect(detectLanguage(null)).toBe("en");
  });

  it("reads only the two known stored values", () => {
    expect(parseLanguage("zh")).toBe("zh");
    expect(parseLanguage("en")).toBe("en");
    expect(parseLanguage("de")).toBeNull();
    expect(parseLanguage(null)).toBeNull();
    expect(htmlLang("zh")).toBe("zh-CN");
    expect(htmlLang("en")).toBe("en");
  });
});

describe("createLanguageStore", () => {
  it("follows the browser until a language is chosen", () => {
    const root = { lang: "" };
    expect(createLanguageStore({ storage: memoryStorage(), languages: ["zh-CN", "en"], root }).get()).toBe("zh");
    expect(root.lang).toBe("zh-CN");
    expect(createLanguageStore({ storage: memoryStorage(), languages: ["en-GB"], root }).get()).toBe("en");
    expect(root.lang).toBe("en");
    expect(createLanguageStore({}).get()).toBe("en");
  });

  it("prefers the stored choice over the browser, and ignores an unknown stored value", () => {
    expect(createLanguageStore({ storage: memoryStorage({ [STORAGE_KEY]: "en" }), languages: ["zh-CN"] }).get()).toBe("en");
    expect(createLanguageStore({ storage: memoryStorage({ [STORAGE_KEY]: "zh" }), languages: ["en-US"] }).get()).toBe("zh");
    expect(createLanguageStore({ storage: memoryStorage({ [STORAGE_KEY]: "klingon" }), languages: ["zh"] }).get()).toBe("zh");
  });

  it("remembers a choice, sets <html lang> and tells every subscriber at once", () => {
    const storage = memoryStorage();
    const root = { lang: "" };
    const store = createLanguageStore({ storage, languages: ["en-US"], root });
    const first = vi.fn();
    const second = vi.fn();
    const unsubscribe = store.subscribe(first);
    store.subscribe(second);
    store.set("zh");
    expect(store.get()).toBe("zh");
    expect(storage.values.get(STORAGE_KEY)).toBe("zh");
    expect(root.lang).toBe("zh-CN");
    expect(first).toHaveBeenCalledTimes(1);
    expect(second).toHaveBeenCalledTimes(1);
    store.set("zh");
    expect(first).toHaveBeenCalledTimes(1);
    unsubscribe();
    store.set("en");
    expect(first).toHaveBeenCalledTimes(1);
    expect(second).toHaveBeenCalledTimes(2);
    expect(root.lang).toBe("en");
    // A new page load reads the choice back, whatever the browser says.
    expect(createLanguageStore({ storage, languages: ["zh-CN"] }).get()).toBe("en");
  });

  it("keeps working when storage refuses", () => {
    const refusing = {
      getItem: () => {
        throw new Error("denied");
      },
      setItem: () => {
        throw new Error("denied");
      },
    };
    const store = createLanguageStore({ storage: refusing, languages: ["zh-HK"] });
    expect(store.get()).toBe("zh");
    store.set("en");
    expect(store.get()).toBe("en");
  });
});

describe("dictation language", () => {
  it("asks the server for Chinese on the Chinese screen and nothing on the English one", () => {
    expect(dictationParams("zh")).toEqual({ language: "zh" });
    expect(dictationParams("en")).toEqual({});
  });
});
