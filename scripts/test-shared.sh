#!/usr/bin/env bash
# The end-to-end suites of a scaled-out deployment: the same tests as the embedded run, with every server
# on PostgreSQL (+ pgvector) and an S3 server (scripts/test-engines.sh starts both on loopback and this
# script stops them, whatever happens). NEXENT_SHARED_SUITES picks the suites (test-name prefixes).
set -euo pipefail
cd "$(dirname "$0")/.."
# scale_out:: (two nodes on one database and bucket) is marked ignored, so only this run includes it.
suites=${NEXENT_SHARED_SUITES:-conversation:: durability:: ingest:: knowledge:: agent:: scale_out::}
dir=$(mktemp -d /tmp/nexent-engines.XXXXXX)
trap 'bash scripts/test-engines.sh stop "$dir"' EXIT
bash scripts/test-engines.sh start "$dir"
set -a; . "$dir/env"; set +a
export NEXENT_TEST_DEPLOYMENT=shared
if cargo nextest --version >/dev/null 2>&1; then
  filter=$(for suite in $suites; do printf 'test(/^%s/) | ' "$suite"; done)
  cargo nextest run -p nexent-e2e --no-fail-fast --run-ignored all -E "${filter% | }"
else
  # shellcheck disable=SC2086 # one filter per suite
  cargo test -p nexent-e2e --no-fail-fast -- --include-ignored $suites
fi
