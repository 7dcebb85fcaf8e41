#!/usr/bin/env bash
# Builds the reference `make bench-llm` puts our server beside: stock llama.cpp for this machine's CPU
# (GGML_NATIVE=ON: -march=native, so AVX-512 where there is one), from the same vendored source
# llama-cpp-sys-2 builds ours from, with a small harness over llama.h (bench/native/llama_native_bench.cpp;
# the vendored source leaves out llama.cpp's own llama-bench). Cached by version under ~/.cache/nexent;
# prints the harness's path. Needs only what the project's build already needs (cmake, a C++ compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(awk '/^name = "llama-cpp-sys-2"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
find_source() { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/llama-cpp-sys-2-"$version"/llama.cpp 2>/dev/null | head -1; }
source_dir=$(find_source)
if [ -z "$source_dir" ]; then
  cargo fetch --quiet
  source_dir=$(find_source)
fi
build_dir="${NEXENT_NATIVE_LLAMA_DIR:-$HOME/.cache/nexent/llama-native-$version}"
harness="$build_dir/llama-native-bench"
if [ ! -x "$harness" ] || [ bench/native/llama_native_bench.cpp -nt "$harness" ]; then
  cmake -S "$source_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE=${NEXENT_NATIVE_BUILD_TYPE:-Release} -DGGML_NATIVE=ON -DGGML_OPENMP=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_COMMON=OFF -DBUILD_SHARED_LIBS=OFF >&2
  cmake --build "$build_dir" --target llama -j "$(nproc)" >&2
  c++ -O2 -std=c++17 -I "$source_dir/include" -I "$source_dir/ggml/include" bench/native/llama_native_bench.cpp \
    $(find "$build_dir" -name 'libllama.a') $(find "$build_dir" -name 'libggml.a') \
    $(find "$build_dir" -name 'libggml-cpu.a') $(find "$build_dir" -name 'libggml-base.a') \
    -lpthread -lm -ldl -o "$harness" >&2
fi
echo "$harness"
