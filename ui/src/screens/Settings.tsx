// Settings: what Config Sync holds besides models and knowledge bases: the app's name, description and
// icon (Nexent's `app` block), saved to the data dir's .env.

import { useEffect, useState } from "react";
import { config, type AppConfig } from "../api/client";
import { ErrorAlert } from "./Chat";

interface AppFields {
  appName: string;
  appDescription: string;
  iconType: string;
  customIconUrl: string;
}

export function SettingsScreen() {
  const [loaded, setLoaded] = useState<AppConfig | null>(null);
  const [fields, setFields] = useState<AppFields>({ appName: "", appDescription: "", iconType: "preset", customIconUrl: "" });
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);

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
      setMessage({ ok: true, text: "Settings saved." });
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
        <h1>Settings</h1>
        {message ? <ErrorAlert message={message.text} /> : <p className="muted">Loading the settings…</p>}
      </div>
    );
  }
  return (
    <div className="page">
      <h1>Settings</h1>
      <form
        className="stack narrow"
        onSubmit={(event) => {
          event.preventDefault();
          void save();
        }}
      >
        <label className="field">
          <span>App name</span>
          <input required value={fields.appName} onChange={set("appName")} />
        </label>
        <label className="field">
          <span>Description</span>
          <textarea rows={3} value={fields.appDescription} onChange={set("appDescription")} />
        </label>
        <label className="field">
          <span>Icon</span>
          <select value={fields.iconType} onChange={set("iconType")}>
            <option value="preset">Preset</option>
            <option value="custom">Custom image URL</option>
          </select>
        </label>
        {fields.iconType === "custom" && (
          <label className="field">
            <span>Icon URL</span>
            <input type="url" value={fields.customIconUrl} onChange={set("customIconUrl")} />
          </label>
        )}
        <div className="actions">
          <button type="submit" className="primary">
            Save settings
          </button>
        </div>
        {message && (
          <p role={message.ok ? "status" : "alert"} className={message.ok ? "notice" : "error"}>
            {message.text}
          </p>
        )}
      </form>
      <p className="muted">
        Knowledge bases for chat are chosen on the Knowledge bases screen, models on the Models screen. The API
        reference is at <a href="/api/docs">/api/docs</a>.
      </p>
    </div>
  );
}
