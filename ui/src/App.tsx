// The shell: a navigation bar and one screen at a time, chosen by the URL's hash (`#/chat`,
// `#/knowledge`), so a reload or a bookmark keeps the screen and no server route is needed for it.

import { useEffect, useState } from "react";
import { ChatScreen } from "./screens/Chat";
import { KnowledgeScreen } from "./screens/Knowledge";
import { ModelsScreen } from "./screens/Models";
import { SettingsScreen } from "./screens/Settings";
import { useT } from "./lib/i18n";

const SCREENS = [
  { path: "chat", label: "nav.chat" },
  { path: "knowledge", label: "nav.knowledge" },
  { path: "models", label: "nav.models" },
  { path: "settings", label: "nav.settings" },
] as const;

type ScreenPath = (typeof SCREENS)[number]["path"];

function currentScreen(): ScreenPath {
  const path = window.location.hash.replace(/^#\/?/, "").split(/[/?]/)[0];
  return SCREENS.find((screen) => screen.path === path)?.path ?? "chat";
}

export function App() {
  const t = useT();
  const [screen, setScreen] = useState<ScreenPath>(currentScreen);
  useEffect(() => {
    const onHashChange = () => setScreen(currentScreen());
    window.addEventListener("hashchange", onHashChange);
    return () => window.removeEventListener("hashchange", onHashChange);
  }, []);
  return (
    <div className="app">
      <header className="topbar">
        <span className="brand">Nexent Local</span>
        <nav aria-label={t("nav.label")}>
          {SCREENS.map((item) => (
            <a key={item.path} href={`#/${item.path}`} aria-current={screen === item.path ? "page" : undefined}>
              {t(item.label)}
            </a>
          ))}
        </nav>
      </header>
      <main className="screen">
        {screen === "chat" && <ChatScreen />}
        {screen === "knowledge" && <KnowledgeScreen />}
        {screen === "models" && <ModelsScreen />}
        {screen === "settings" && <SettingsScreen />}
      </main>
    </div>
  );
}
