#!/usr/bin/env bash
# Builds stock llama.cpp's own `llama-bench` for this machine's CPU (GGML_NATIVE=ON: -march=native, so
# AVX-512 where there is one), from the same vendored source llama-cpp-sys-2 builds ours from: the
# reference `make bench-llm` puts our server beside. Cached by version under ~/.cache/nexent; prints the
# tool's path. Needs only what the project's build already needs (cmake, a C++ compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(awk '/^name = "llama-cpp-sys-2"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
source_dir=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/llama-cpp-sys-2-"$version"/llama.cpp 2>/dev/null | head -1)
if [ -z "$source_dir" ]; then
  cargo fetch --quiet
  source_dir=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/llama-cpp-sys-2-"$version"/llama.cpp | head -1)
fi
build_dir="${NEXENT_NATIVE_LLAMA_DIR:-$HOME/.cache/nexent/llama-native-$version}"
if [ ! -x "$build_dir/bin/llama-bench" ]; then
  cmake -S "$source_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DBUILD_SHARED_LIBS=OFF >&2
  cmake --build "$build_dir" --target llama-bench -j "$(nproc)" >&2
fi
echo "$build_dir/bin/llama-bench"
