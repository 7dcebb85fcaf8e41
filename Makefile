# The README's two commands: `make run` and `make test`. Both install what is missing first.
# One target dir outside the clone is shared by every checkout and by CI, so builds are incremental.
CARGO_TARGET_DIR ?= $(HOME)/.cache/nexent/target
export CARGO_TARGET_DIR
NEXENT_BIN := $(CARGO_TARGET_DIR)/release/nexent
# whisper.cpp (in the nexent-stt helper) defaults to -march=native; these make it portable with the vector
# units every x86-64 machine of the last decade has (crates.md §2). They go to the helper's build alone:
# llama.cpp's build script watches GGML_* variables, and its own flags must not change under it.
GGML_FLAGS := GGML_NATIVE=OFF GGML_AVX=ON GGML_AVX2=ON GGML_FMA=ON GGML_F16C=ON GGML_BMI2=ON

.PHONY: test-shared run test setup build bundle check-deb lint bench-server bench-retrieval bench-multilingual bench-scale bench-scale-out bench-ingest bench-llm bench-agent bench-voice bench-embedders bench-soak fuzz

setup:
	@bash scripts/setup.sh

build: setup
	env $(GGML_FLAGS) cargo build --release -p nexent-stt
	cargo build --release -p nexent-server --bin nexent

## run: install what is missing, build in release mode, and start: the desktop window where a display exists,
## else the headless server printing its URL (HEADLESS=1 forces the server).
run: build
	@if [ -z "$(HEADLESS)" ] && [ -n "$${DISPLAY}$${WAYLAND_DISPLAY}" ]; then \
	  cargo build --release -p nexent-desktop && \
	  $(CARGO_TARGET_DIR)/release/nexent-desktop --models-dir models/files $(ARGS); \
	else \
	  $(NEXENT_BIN) serve --models-dir models/files $(ARGS); \
	fi

## bundle: a .deb of the desktop app (Tauri's bundler from the UI's npm dependencies), nexent-stt inside.
TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
bundle: build
	mkdir -p src-tauri/binaries
	cp $(CARGO_TARGET_DIR)/release/nexent-stt src-tauri/binaries/nexent-stt-$(TRIPLE)
	# llama.cpp's shared libraries and CPU kernel modules, installed in /usr/lib/nexent-local (the
	# executables' rpath); stripped of debug info like the binary.
	rm -rf src-tauri/lib-nexent-local && mkdir -p src-tauri/lib-nexent-local
	cp -L $(CARGO_TARGET_DIR)/release/lib*.so.0 $(CARGO_TARGET_DIR)/release/libggml-cpu-*.so src-tauri/lib-nexent-local/
	strip --strip-debug src-tauri/lib-nexent-local/*
	cd src-tauri && ../ui/node_modules/.bin/tauri build --no-bundle --config tauri.bundle.conf.json
	# The release profile keeps line tables for the benchmarks' profiles; the package does not need them.
	strip --strip-debug $(CARGO_TARGET_DIR)/release/nexent-desktop
	cd src-tauri && ../ui/node_modules/.bin/tauri bundle --bundles deb --config tauri.bundle.conf.json
	@ls $(CARGO_TARGET_DIR)/release/bundle/deb/*.deb

## bench-soak: the release binary under open-loop load of every kind of request while faults are injected
## (SIGKILLs, a full disk, a read-only data dir, the speech helper killed); writes bench/results/soak.md.
## Needs root (the data dir is a size-limited tmpfs). SOAK_SECONDS, SOAK_RATE, SOAK_KILLS tune it.
SOAK_SECONDS ?= 1200
SOAK_RATE ?= 60
SOAK_KILLS ?= 20
bench-soak: build
	NEXENT_BIN=$(CARGO_TARGET_DIR)/release/nexent cargo run --release -p nexent-bench --bin bench-soak -- --seconds $(SOAK_SECONDS) --rate $(SOAK_RATE) --kills $(SOAK_KILLS) --out bench/results/soak.md

## fuzz: the hostile-input harness of every document parser (mutated fixtures, output and allocation caps),
## FUZZ_SECONDS per parser (the normal test run gives each 2 s); two parsers run at a time.
FUZZ_SECONDS ?= 60
fuzz:
	NEXENT_FUZZ_SECONDS=$(FUZZ_SECONDS) cargo nextest run -p nexent-core --success-output immediate --failure-output immediate --test-threads 2 ingest::parse::fuzz

## check-deb: installs the bundle's .deb and checks the installed app (window, bundled models, chat, search, voice).
check-deb:
	bash scripts/check-deb.sh

## test: every test of the workspace (unit and end-to-end against the real binary).
test:
	@NEXENT_MODEL_GROUPS="embedding llm llm-tiny voice test-audio" bash scripts/setup.sh
	bash scripts/setup-test.sh
	env $(GGML_FLAGS) cargo build -p nexent-stt
	cargo build -p nexent-server --bin nexent
	cargo build -p nexent-desktop
	cd ui && npm test --silent
	@if cargo nextest --version >/dev/null 2>&1; then \
	  cargo nextest run --workspace --exclude nexent-stt --no-fail-fast && \
	  env $(GGML_FLAGS) cargo nextest run -p nexent-stt --no-fail-fast; \
	else \
	  cargo test --workspace --exclude nexent-stt --no-fail-fast && \
	  env $(GGML_FLAGS) cargo test -p nexent-stt --no-fail-fast; \
	fi
	bash scripts/test-shared.sh

## test-shared: the conversation, ingestion, knowledge and agent suites again, on PostgreSQL and S3.
test-shared:
	cargo build -p nexent-server --bin nexent
	bash scripts/test-shared.sh

lint:
	cd ui && npm run --silent typecheck
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --exclude nexent-stt -- -D warnings
	env $(GGML_FLAGS) cargo clippy -p nexent-stt --all-targets -- -D warnings
	bash scripts/check-architecture.sh

## bench-server: start-up time, idle memory and latency under 50 clients; writes bench/results/server.md.
bench-server: build
	NEXENT_BIN=$(NEXENT_BIN) cargo run --release -p nexent-bench --bin bench-server -- --out bench/results/server.md

## bench-retrieval: nDCG@10 / recall@100 per search mode on ../shared/data; writes bench/results/retrieval.md.
bench-retrieval: setup
	cargo run --release -p nexent-bench --bin bench-retrieval -- --data ../shared/data --models models/files --out bench/results/retrieval.md

## bench-multilingual: MiniLM beside multilingual-e5-small on the English collections and bench/data/zh-facts (Chinese);
## writes bench/results/multilingual.md.
bench-multilingual: setup
	cargo run --release -p nexent-bench --bin bench-multilingual -- --data ../shared/data,bench/data --models models/files --out bench/results/multilingual.md

## bench-scale: indexing and search latency at 10k / 100k chunks beside LanceDB; writes bench/results/scale.md.
BENCH_VENV ?= $(HOME)/.cache/nexent/bench-venv
bench-scale: setup
	@test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	@$(BENCH_VENV)/bin/python -c "import lancedb" 2>/dev/null || $(BENCH_VENV)/bin/pip install -q lancedb numpy pyarrow
	cargo run --release -p nexent-bench --bin bench-scale -- --data ../shared/data --models models/files --peer-python $(BENCH_VENV)/bin/python --out bench/results/scale.md

## bench-scale-out: the PostgreSQL knowledge store beside Tantivy (SciFact nDCG@10, latency at 100k chunks) and
## ingestion with one and two nodes on PostgreSQL + S3; starts and stops the engines; writes bench/results/scale-out.md.
bench-scale-out: build
	cargo build --release -p nexent-bench --bin bench-scale-out
	dir=$$(mktemp -d /tmp/nexent-engines.XXXXXX); trap 'bash scripts/test-engines.sh stop "$$dir"' EXIT; \
	bash scripts/test-engines.sh start "$$dir" && set -a && . "$$dir/env" && set +a && \
	NEXENT_TEST_DEPLOYMENT=shared NEXENT_BIN=$(NEXENT_BIN) $(CARGO_TARGET_DIR)/release/bench-scale-out --data ../shared/data --models models/files --out bench/results/scale-out.md

## bench-ingest: parse MB/s per format and end-to-end ingestion beside the raw embedder; writes bench/results/ingest.md.
DOCS_PACKAGES := python-docx python-pptx openpyxl fpdf2 ebooklib odfpy xlwt
bench-ingest: setup build
	@test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	@$(BENCH_VENV)/bin/python -c "import docx, pptx, openpyxl, fpdf, ebooklib, odf, xlwt" 2>/dev/null || $(BENCH_VENV)/bin/pip install -q $(DOCS_PACKAGES)
	NEXENT_BIN=$(NEXENT_BIN) cargo run --release -p nexent-bench --bin bench-ingest -- --data ../shared/data --models models/files --docs-python $(BENCH_VENV)/bin/python --out bench/results/ingest.md

## bench-llm: prompt and generation tokens/s and time to first token, server beside stock llama.cpp built for this CPU (scripts/build-native-llama.sh) and beside llama.cpp driven directly; writes bench/results/llm.md.
bench-llm: build
	@NEXENT_MODEL_GROUPS="llm llm-tiny" bash scripts/setup.sh
	NEXENT_LLAMA_BENCH=$$(bash scripts/build-native-llama.sh) NEXENT_BIN=$(NEXENT_BIN) cargo run --release -p nexent-bench --bin bench-llm -- --models models/files --out bench/results/llm.md

## bench-agent: 20 questions on invented documents through /api/agent/run (0.5B and 1.5B), beside closed-book and oracle references; writes bench/results/agent.md.
bench-agent: build
	@NEXENT_MODEL_GROUPS="embedding llm llm-large" bash scripts/setup.sh
	NEXENT_BIN=$(NEXENT_BIN) cargo run --release -p nexent-bench --bin bench-agent -- --models models/files --out bench/results/agent.md

## bench-voice: STT and TTS real-time factors and latencies beside faster-whisper and piper-tts; writes bench/results/voice.md.
bench-voice: build
	@NEXENT_MODEL_GROUPS="voice test-audio" bash scripts/setup.sh
	@test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	@$(BENCH_VENV)/bin/python -c "import faster_whisper, piper" 2>/dev/null || $(BENCH_VENV)/bin/pip install -q faster-whisper piper-tts
	NEXENT_BIN=$(NEXENT_BIN) cargo run --release -p nexent-bench --bin bench-voice -- --models models/files --peer-python $(BENCH_VENV)/bin/python --out bench/results/voice.md

## bench-embedders: MiniLM on ONNX Runtime (int8) beside candle (fp32 safetensors): speed and SciFact nDCG@10; writes bench/results/embedders.md.
bench-embedders: setup
	cargo run --release -p nexent-bench --features candle --bin bench-embedders -- --data ../shared/data --models models/files --out bench/results/embedders.md
