// Syntax highlighting on demand: highlight.js (about 20 kB gzipped with its languages) is not in the main
// bundle; the first code block asks for it, and every Markdown view re-renders once it is there.

export type Highlighter = (code: string, language: string) => string | null;

let highlighter: Highlighter | null = null;
let loading: Promise<void> | null = null;
const listeners = new Set<() => void>();

/** The highlighter when loaded, else null (code is then shown plain). */
export function currentHighlighter(): Highlighter | null {
  return highlighter;
}

/** Starts loading the highlighter (once); subscribers are told when it is ready. */
export function loadHighlighter(): Promise<void> {
  loading ??= import("./highlightLanguages").then(
    (module) => {
      highlighter = module.highlight;
      for (const listener of [...listeners]) listener();
    },
    () => {
      // Offline or a stale page: code stays plain; the next code block tries again.
      loading = null;
    },
  );
  return loading;
}

export function subscribeHighlighter(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
