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

# Debian packages the tests and the benchmark smoke run need: Chromium and chromedriver for the
# console's browser tests (tests/it/console.rs), `wrk` for the benchmark's polling part (an
# out-of-process load generator). Install them when missing and possible; if they cannot be
# installed, what needs them fails with a message saying so (nothing passes by skipping).
step "debian packages: chromium, chromium-driver, wrk"
missing=""
{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || missing="chromium chromium-driver"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
if [ -z "$missing" ]; then
  echo "present: $(/usr/bin/chromium --version 2>/dev/null || echo chromium), $(/usr/bin/chromedriver --version 2>/dev/null | head -n1), $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2)"
else
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd="sudo -n"
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo_cmd" ]; }; then
    echo "installing with apt-get:$missing"
    $sudo_cmd apt-get update -qq || echo "apt-get update failed; trying the install anyway"
    # shellcheck disable=SC2086 # the package names are meant to split
    if $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; then
      echo "installed:$missing"
    else
      echo "could not install$missing: the tests or the benchmark part that need them will fail"
    fi
  else
    echo "missing:$missing, and they cannot be installed here (no apt-get, or not root and no"
    echo "sudo): the console's browser tests or the benchmark's polling part will fail"
  fi
fi

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
