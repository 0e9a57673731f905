#!/usr/bin/env bash
# Schema-driven fuzz run of the API: starts a local Pactum (`pactum dev`: anvil, the contracts,
# SQLite, an owner credential and two demo agents), then runs Schemathesis against the served
# `/openapi.json` with every check, and fails on any server error or any response that breaks
# the document. Not part of ./test.sh (it takes minutes); see docs/openapi.md.
#
#   tests/fuzz/schemathesis.sh                 # 25 examples per operation, fixed seed
#   MAX_EXAMPLES=100 SEED=7 tests/fuzz/schemathesis.sh
#
# Needs python3 (with venv) and PyPI; the venv is made once under target/fuzz/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES="${MAX_EXAMPLES:-25}"
SEED="${SEED:-1}"
WORK=target/fuzz
VENV="$WORK/venv"
mkdir -p "$WORK"

if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet --bin pactum
SUMMARY="$WORK/dev.json"
rm -f "$SUMMARY" "$WORK/pactum.db"
target/debug/pactum dev --port 0 --rpc-port 0 --database "$WORK/pactum.db" --out "$SUMMARY" \
  >"$WORK/dev.log" 2>&1 &
DEV_PID=$!
# Schemathesis leaves its example cache in .schemathesis/ of the working directory.
trap 'kill "$DEV_PID" 2>/dev/null; wait "$DEV_PID" 2>/dev/null || true; rm -rf .schemathesis' EXIT
for _ in $(seq 1 240); do
  [ -s "$SUMMARY" ] && break
  kill -0 "$DEV_PID" 2>/dev/null || { cat "$WORK/dev.log"; echo "pactum dev exited" >&2; exit 1; }
  sleep 0.5
done
[ -s "$SUMMARY" ] || { cat "$WORK/dev.log"; echo "pactum dev did not start" >&2; exit 1; }

field() { python3 -c "import json,sys; d=json.load(open('$SUMMARY')); print(eval(sys.argv[1]))" "$1"; }
API_URL="$(field "d['api_url']")"
PACTUM_FUZZ_OWNER_KEY="$(field "d['owner_key']")"
PACTUM_FUZZ_AGENT_KEY="$(field "d['agents']['buyer']['api_key']")"
export PACTUM_FUZZ_OWNER_KEY PACTUM_FUZZ_AGENT_KEY
echo "schemathesis $SCHEMATHESIS_VERSION against $API_URL/openapi.json (max $MAX_EXAMPLES examples per operation, seed $SEED)"

# Agent operations first, then owner operations: the owner's may revoke or re-key any agent of
# the account, the demo buyer whose key the agent operations use included.
run() {
  "$VENV/bin/schemathesis" --config-file tests/fuzz/schemathesis.toml run "$API_URL/openapi.json" \
    --checks all \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --workers 2 \
    --request-timeout 40 \
    --report junit --report-dir "$WORK/report" \
    "$@"
}
run --exclude-path-regex '^/(v1/)?agents'
run --include-path-regex '^/(v1/)?agents'
