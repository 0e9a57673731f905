#!/usr/bin/env bash
# The one test command for Pactum (CI runs it through .ci/run). Needs only Rust and Node.js/npm:
# the chain toolchain (anvil, forge, cast, solc-js) is installed from anvil/package-lock.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

step() {
  printf '\n==> %s\n' "$*"
}

step "toolchain: anvil/ensure.sh"
anvil/ensure.sh
# shellcheck source=anvil/env.sh
source anvil/env.sh
echo "anvil: $PACTUM_ANVIL_BIN"
echo "forge: $FORGE"

# Postgres-backed tests run when PACTUM_TEST_DATABASE_URL is set; when it is not and a server
# answers on 127.0.0.1:5432 (trust auth), that one is used. SQLite tests always run.
if [ -z "${PACTUM_TEST_DATABASE_URL:-}" ] && command -v pg_isready >/dev/null 2>&1 \
  && pg_isready -q -h 127.0.0.1 -p 5432; then
  export PACTUM_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
fi
echo "postgres: ${PACTUM_TEST_DATABASE_URL:-not configured (Postgres tests skip)}"

step "abi/ up to date: anvil/export-abi.sh --check"
anvil/export-abi.sh --check

step "local chain scripts: anvil/test-scripts.sh"
anvil/test-scripts.sh

step "contracts: forge fmt --check"
"$FORGE" fmt --check contracts

step "contracts: forge test"
"$FORGE" test

step "rust: cargo fmt --check"
cargo fmt --check

step "rust: cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

# A smoke run of the benchmark in the test profile: it must still run; its figures mean nothing.
step "rust: cargo test --bench service (benchmark smoke run)"
cargo test --bench service

# The Rust integration tests spawn anvil from PACTUM_ANVIL_BIN (exported by anvil/env.sh).
if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doctests; they go first so that nextest's summary closes the run.
  step "rust: cargo test --doc, then cargo nextest run"
  cargo test --doc
  cargo nextest run --no-tests=fail --no-fail-fast
else
  # tests/it is one binary; some tests read process-wide state (the metrics registry), so each
  # area runs in a process of its own, as nextest runs each test in its own.
  step "rust: cargo test (lib, bins, docs, then each area of tests/it in its own process)"
  cargo test --lib --bins
  cargo test --doc
  for area in $(cargo test -q --test it -- --list --format terse \
    | sed -n 's/^\([a-z0-9_]*\)::.*: test$/\1/p' | sort -u); do
    cargo test --test it -- "$area::"
  done
fi

step "all checks passed"
