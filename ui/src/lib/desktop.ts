// What only the desktop window adds to the page: a native folder chooser (Tauri's dialog plugin, the one
// permission the shell grants its own origin). In a browser none of this exists and the page falls back to
// typing a path. The page calls Tauri's IPC bridge directly instead of pulling in its npm wrapper for
// a single call.

type TauriBridge = { invoke: (command: string, args?: Record<string, unknown>) => Promise<unknown> };

function bridge(): TauriBridge | undefined {
  return (window as unknown as { __TAURI_INTERNALS__?: TauriBridge }).__TAURI_INTERNALS__;
}

/** True inside the Nexent Local window. */
export function inDesktopApp(): boolean {
  return bridge() !== undefined;
}

/** The folder the person chose in the system's dialog, or null when they cancelled (or in a browser). */
export async function chooseFolder(title: string): Promise<string | null> {
  const tauri = bridge();
  if (!tauri) return null;
  const chosen = await tauri.invoke("plugin:dialog|open", { options: { directory: true, multiple: false, title } });
  return typeof chosen === "string" ? chosen : null;
}
