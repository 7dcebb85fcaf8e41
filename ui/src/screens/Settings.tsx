// Settings: the UI's language (this browser's choice, kept in localStorage), and what Config Sync holds
// besides models and knowledge bases: the app's name, description and icon (Nexent's `app` block), saved to
// the data dir's .env.

import { useEffect, useState } from "react";
import { config, type AppConfig } from "../api/client";
import { ErrorAlert } from "./Chat";
import { LANGUAGES, htmlLang, parseLanguage, setLanguage, useLanguage, useT } from "../lib/i18n";

interface AppFields {
  appName: string;
  appDescription: string;
  iconType: string;
  customIconUrl: string;
}

/** The language select: applied at once to every screen and remembered in this browser. */
function LanguageChoice() {
  const t = useT();
  const language = useLanguage();
  return (
    <label className="field narrow">
      <span>{t("settings.language")}</span>
      <select
        value={language}
        onChange={(event) => {
          const chosen = parseLanguage(event.target.value);
          if (chosen) setLanguage(chosen);
        }}
      >
        {LANGUAGES.map((option) => (
          // Each language in its own name, whatever the screen's language.
          <option key={option} value={option} lang={htmlLang(option)}>
            {t(`settings.language.${option}`)}
          </option>
        ))}
      </select>
    </label>
  );
}

export function SettingsScreen() {
  const t = useT();
  const [loaded, setLoaded] = useState<AppConfig | null>(null);
  const [fields, setFields] = useState<AppFields>({ appName: "", appDescription: "", iconType: "preset", customIconUrl: "" });
  // Saved: shown in the screen's language; a failure: the server's text.
  const [message, setMessage] = useState<{ ok: true } | { ok: false; text: string } | null>(null);

  useEffect(() => {
    config
      .load()
      .then((value) => {
        setLoaded(value);
        const app = value.app as Partial<AppFields>;
        setFields({
          appName: app.appName ?? "",
          appDescription: app.appDescription ?? "",
          iconType: app.iconType ?? "preset",
          customIconUrl: app.customIconUrl ?? "",
        });
      })
      .catch((failure: Error) => setMessage({ ok: false, text: failure.message }));
  }, []);

  const save = async () => {
    if (!loaded) return;
    try {
      await config.save({ ...loaded, app: { ...loaded.app, ...fields, avatarUri: (loaded.app as { avatarUri?: string }).avatarUri ?? "" } });
      setLoaded(await config.load());
      setMessage({ ok: true });
    } catch (failure) {
      setMessage({ ok: false, text: (failure as Error).message });
    }
  };

  const set = (key: keyof AppFields) => (event: { target: { value: string } }) => {
    const value = event.target.value;
    setFields((current) => ({ ...current, [key]: value }));
  };
  // The form appears once the saved settings are in, so nothing typed is overwritten by their arrival.
  if (!loaded) {
    return (
      <div className="page">
        <h1>{t("settings.title")}</h1>
        <LanguageChoice />
        {message && !message.ok ? <ErrorAlert message={message.text} /> : <p className="muted">{t("settings.loading")}</p>}
      </div>
    );
  }
  return (
    <div className="page">
      <h1>{t("settings.title")}</h1>
      <LanguageChoice />
      <form
        className="stack narrow"
        onSubmit={(event) => {
          event.preventDefault();
          void save();
        }}
      >
        <label className="field">
          <span>{t("settings.appName")}</span>
          <input required value={fields.appName} onChange={set("appName")} />
        </label>
        <label className="field">
          <span>{t("settings.description")}</span>
          <textarea rows={3} value={fields.appDescription} onChange={set("appDescription")} />
        </label>
        <label className="field">
          <span>{t("settings.icon")}</span>
          <select value={fields.iconType} onChange={set("iconType")}>
            <option value="preset">{t("settings.iconPreset")}</option>
            <option value="custom">{t("settings.iconCustom")}</option>
          </select>
        </label>
        {fields.iconType === "custom" && (
          <label className="field">
            <span>{t("settings.iconUrl")}</span>
            <input type="url" value={fields.customIconUrl} onChange={set("customIconUrl")} />
          </label>
        )}
        <div className="actions">
          <button type="submit" className="primary">
            {t("settings.save")}
          </button>
        </div>
        {message && (
          <p role={message.ok ? "status" : "alert"} className={message.ok ? "notice" : "error"}>
            {message.ok ? t("settings.saved") : message.text}
          </p>
        )}
      </form>
      <p className="muted">
        {t("settings.footerBefore")}
        <a href="/api/docs">/api/docs</a>
        {t("settings.footerAfter")}
      </p>
    </div>
  );
}
