#!/usr/bin/env bash
# Installs the .deb that `make bundle` built and checks the installed app as a user would meet it: started
# from /usr/bin with an empty home under Xvfb, its window opens, the bundled models are linked into the
# new data dir, and the local chat model, the embedder (a knowledge base indexed and searched) and both
# voice engines answer. Needs root (apt) and a free port 5010. `make check-deb` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
deb=$(ls -t "$TARGET_DIR"/release/bundle/deb/*.deb 2>/dev/null | head -1 || true)
[ -n "$deb" ] || { echo "check-deb: no .deb under $TARGET_DIR/release/bundle/deb: run make bundle"; exit 1; }
say() { printf 'check-deb: %s\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }

say "installing $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$(realpath "$deb")" >/dev/null
dpkg -L nexent-local | grep -q '/usr/lib/Nexent Local/models/' || fail "the package has no models"

home=$(mktemp -d)
display=:$(( (RANDOM % 40) + 150 ))
Xvfb "$display" -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
log=$home/desktop.log
cleanup() { kill "${app:-0}" "$xvfb" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$home"; }
trap cleanup EXIT
sleep 1
HOME=$home DISPLAY=$display XDG_DATA_HOME=$home/.local/share /usr/bin/nexent-desktop >"$log" 2>&1 &
app=$!
url=
for _ in $(seq 1 240); do
  url=$(sed -n 's/^Nexent Local listening on //p' "$log" | head -1)
  [ -n "$url" ] && break
  kill -0 "$app" 2>/dev/null || { cat "$log"; fail "nexent-desktop exited"; }
  sleep 0.5
done
[ -n "$url" ] || fail "the server did not start"
say "listening on $url"
for _ in $(seq 1 120); do
  xwininfo -root -tree -display "$display" | grep -q '"Nexent Local"' && break
  sleep 0.5
done
xwininfo -root -tree -display "$display" | grep -q '"Nexent Local"' || fail "no window"
say "the window is open"

models=$home/.local/share/nexent-local/models
[ -L "$models/Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf" ] || { ls -la "$models" || true; fail "the chat model is not linked into $models"; }
say "bundled models linked: $(ls "$models" | tr '\n' ' ')"

json() { curl -sf -H 'Content-Type: application/json' "$@"; }
answer=$(json "$url/v1/chat/completions" -d '{"messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":8,"temperature":0}') \
  || fail "chat completion failed"
say "chat: $(printf '%s' "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"].strip())')"
pid=$(pgrep -f /usr/bin/nexent-desktop | head -1)
kernels=$(grep -o '/usr/lib/nexent-local/libggml-cpu-[a-z0-9_]*\.so' "/proc/$pid/maps" | sort -u)
[ -n "$kernels" ] || fail "no llama.cpp CPU kernels from /usr/lib/nexent-local are loaded"
say "CPU kernels: $kernels"

json -X POST "$url/api/indices/deb-check?embedding_dim=384" >/dev/null || fail "cannot create a knowledge base"
json -X POST "$url/api/indices/deb-check/documents" -d '{"task_id":"deb","index_name":"deb-check","results":[{"text":"The orchard behind the school grows forty-two pear trees.","source":"/notes/orchard.txt","source_type":"file","metadata":{"filename":"orchard.txt"}}]}' >/dev/null \
  || fail "cannot index a document"
hits=$(json "$url/api/indices/search/hybrid" -d '{"index_names":["deb-check"],"query":"How many pear trees are there?","top_k":3}') \
  || fail "hybrid search failed"
printf '%s' "$hits" | grep -q 'forty-two pear trees' || fail "search did not find the document: $hits"
say "knowledge: indexed and found by hybrid search"

for kind in stt tts; do
  reply=$(json "$url/api/voice/connectivity" -d "{\"model_type\":\"$kind\"}") || fail "$kind connectivity failed"
  printf '%s' "$reply" | grep -q '"connected":true' || fail "$kind is not connected: $reply"
  say "$kind: $(printf '%s' "$reply" | python3 -c 'import json,sys; print(json.load(sys.stdin)["message"])')"
done
say "passed"
