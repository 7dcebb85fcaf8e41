import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The UI is served by the nexent binary at `/` and talks to `/api` on the same origin. `npm run dev` proxies
// `/api` to a server on 5010 so the page can be worked on with hot reload.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
  server: { proxy: { "/api": { target: "http://127.0.0.1:5010", ws: true } } },
  test: { include: ["src/**/*.test.ts"] },
});
