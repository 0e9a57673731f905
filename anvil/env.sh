# shellcheck shell=bash disable=SC2034  # sourced; the variables are for the caller
# Sourced (not run) by Pactum's scripts to find the local-chain tools. For each tool the first of
# these wins:
#   1. PACTUM_ANVIL_BIN / PACTUM_FORGE_BIN / PACTUM_CAST_BIN, when already set;
#   2. the pinned copy in anvil/node_modules/.bin (installed by anvil/ensure.sh; Linux x86_64 only,
#      the platform the @foundry-rs packages are built for);
#   3. `anvil` / `forge` / `cast` on PATH (e.g. a foundryup install).
# Sets and exports PACTUM_ANVIL_BIN (the Rust tests read it) and sets FORGE and CAST. When a tool is
# found nowhere its variable holds the pinned path, so running it fails naming what is missing;
# call anvil/ensure.sh first to install it. Also sets PACTUM_ANVIL_DIR and PACTUM_REPO_ROOT.

PACTUM_ANVIL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PACTUM_REPO_ROOT=$(cd "$PACTUM_ANVIL_DIR/.." && pwd)

# pactum_find_tool NAME OVERRIDE: prints the path to use for NAME.
pactum_find_tool() {
  local name=$1 override=$2 pinned="$PACTUM_ANVIL_DIR/node_modules/.bin/$1"
  if [[ -n "$override" ]]; then
    printf '%s\n' "$override"
  elif [[ -x "$pinned" && "$(uname -s)/$(uname -m)" == "Linux/x86_64" ]]; then
    printf '%s\n' "$pinned"
  elif command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
  else
    printf '%s\n' "$pinned"
  fi
}

PACTUM_ANVIL_BIN=$(pactum_find_tool anvil "${PACTUM_ANVIL_BIN:-}")
FORGE=$(pactum_find_tool forge "${PACTUM_FORGE_BIN:-}")
CAST=$(pactum_find_tool cast "${PACTUM_CAST_BIN:-}")
export PACTUM_ANVIL_BIN
