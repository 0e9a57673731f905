#!/usr/bin/env bash
# Makes sure the pinned local-chain toolchain (anvil, forge, cast, solc-js, OpenZeppelin) is
# installed in anvil/node_modules, running `npm ci` only when something is missing or the lock file
# changed since the last install. Silent when there is nothing to do; npm's own output goes to
# stderr so that callers printing machine-readable stdout are not disturbed. Usable from any cwd.
set -euo pipefail

anvil_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
modules="$anvil_dir/node_modules"
lock="$anvil_dir/package-lock.json"
# Written after a successful `npm ci`; holds the sha256 of the lock file it installed.
marker="$modules/.pactum-installed"

lock_hash() {
  sha256sum "$lock" | cut -d' ' -f1
}

# True when every package the lock file names is installed at the locked version.
versions_match() {
  command -v node >/dev/null 2>&1 || return 1
  node - "$anvil_dir" <<'JS' 2>/dev/null
const fs = require("fs");
const path = require("path");
const dir = process.argv[2];
const lock = JSON.parse(fs.readFileSync(path.join(dir, "package-lock.json"), "utf8"));
for (const [key, entry] of Object.entries(lock.packages || {})) {
  if (!key.startsWith("node_modules/")) continue;
  let installed;
  try {
    installed = JSON.parse(fs.readFileSync(path.join(dir, key, "package.json"), "utf8")).version;
  } catch (e) {
    if (entry.optional) continue;
    process.exit(1);
  }
  if (installed !== entry.version) process.exit(1);
}
JS
}

is_installed() {
  local tool
  for tool in anvil forge cast; do
    [[ -x "$modules/.bin/$tool" ]] || return 1
  done
  [[ -f "$modules/solc/package.json" && -f "$modules/@openzeppelin/contracts/package.json" ]] || return 1
  if [[ ! -f "$marker" ]]; then
    # Installed by a plain `npm ci` (or an older ensure.sh): adopt it if it matches the lock file,
    # rather than wiping a tree that other processes may be using.
    versions_match || return 1
    lock_hash >"$marker"
    return 0
  fi
  if [[ "$lock" -nt "$marker" ]]; then
    # A checkout can touch the lock file without changing it; only a new hash needs a reinstall.
    [[ "$(cat "$marker")" == "$(lock_hash)" ]] || return 1
    touch "$marker"
  fi
  return 0
}

is_installed && exit 0

if ! command -v npm >/dev/null 2>&1; then
  echo "anvil/ensure.sh: npm is not installed; it is needed to install the pinned toolchain" \
    "(anvil/package.json). Install Node.js >= 20, or see anvil/README.md for using your own foundry." >&2
  exit 1
fi
npm_flags=(--no-audit --no-fund)
if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
  # The @foundry-rs packages are Linux x86_64 builds and npm refuses them elsewhere; --force still
  # installs solc-js and OpenZeppelin, which forge needs, while env.sh ignores the foreign binaries
  # and takes anvil/forge/cast from PACTUM_*_BIN or PATH (e.g. foundryup).
  echo "anvil/ensure.sh: $(uname -s)/$(uname -m) is not Linux/x86_64: the pinned foundry binaries" \
    "will not run here; install foundry yourself (see anvil/README.md)." >&2
  npm_flags+=(--force)
fi

# Two scripts may ask at once (e.g. parallel test runs): install under a lock, then look again.
lockfile="${TMPDIR:-/tmp}/pactum-anvil-ensure-$(printf '%s' "$anvil_dir" | sha256sum | cut -c1-16).lock"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$lockfile"
  flock 9
  is_installed && exit 0
fi

echo "anvil/ensure.sh: installing the pinned toolchain (npm ci in $anvil_dir)" >&2
hash=$(lock_hash)
npm ci --prefix "$anvil_dir" "${npm_flags[@]}" >&2
for tool in anvil forge cast; do
  if [[ ! -x "$modules/.bin/$tool" ]]; then
    echo "anvil/ensure.sh: npm ci finished but $modules/.bin/$tool is missing" >&2
    exit 1
  fi
done
printf '%s\n' "$hash" >"$marker"
