#!/usr/bin/env bash
# Architecture invariants that the compiler cannot see (ARCHITECTURE.md lists them):
#   - nexent-core knows no HTTP server and no UI: it depends on neither axum nor tauri.
#   - nexent-api never imports an engine (llama.cpp, whisper.cpp, ONNX Runtime): binaries wire engines.
#   - whisper.cpp and llama.cpp never share a binary (their ggml copies clash): only nexent-stt links
#     whisper-rs, and nexent-stt links nothing of llama.cpp or of our other crates.
#   - a write's RETURNING rows read outside a transaction are read with fetch_all: sqlx's fetch_one and
#     fetch_optional stop at the first row and drop SQLite's commit error (nexent-core's db module).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
forbid() {
  local package=$1; shift
  local found
  found=$(cargo tree -p "$package" -e normal,build --prefix none --no-dedupe 2>/dev/null \
    | awk '{print $1}' | sort -u | grep -xE "$(IFS='|'; echo "$*")" || true)
  if [ -n "$found" ]; then
    echo "architecture: $package must not depend on: $found"; status=1
  else
    echo "architecture: $package is free of $*"
  fi
}
forbid nexent-core axum axum-core tauri wry utoipa
forbid nexent-api tauri llama-cpp-2 llama-cpp-sys-2 whisper-rs whisper-rs-sys ort ort-sys nexent-engines
forbid nexent-server whisper-rs whisper-rs-sys
forbid nexent-engines whisper-rs whisper-rs-sys
forbid nexent-stt llama-cpp-2 llama-cpp-sys-2 nexent-core nexent-engines nexent-api
returning_on_pool=$(find crates -name '*.rs' -path '*/src/*' -print0 | xargs -0 awk '
  /RETURNING/ { open = FNR }
  open && /\.fetch_(one|optional)\(/ && /pool\(\)/ { print FILENAME ":" FNR; open = 0 }
  /\.await/ { open = 0 }' || true)
if [ -n "$returning_on_pool" ]; then
  echo "architecture: a RETURNING write is read with fetch_one/fetch_optional on the pool (use fetch_all):"
  echo "$returning_on_pool"; status=1
else
  echo "architecture: RETURNING writes outside a transaction are read to their end"
fi
exit $status
