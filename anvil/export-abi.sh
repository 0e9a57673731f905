#!/usr/bin/env bash
# Generates abi/: builds the contracts with the pinned forge and writes, for every contract the
# service deploys or calls, abi/<Name>.json = {"abi", "bytecode": {"object"}, "deployedBytecode":
# {"object"}} — the forge-artifact shape alloy's `sol!` reads. This is the only script that writes
# abi/; edit CONTRACTS below to change what is exported.
#
#   anvil/export-abi.sh           rebuild and rewrite abi/
#   anvil/export-abi.sh --check   rebuild into a temporary directory and fail, naming the files,
#                                 when the committed abi/ differs (CI runs this via ./test.sh)
set -euo pipefail

# Contract name = source file (relative to the repo root). The one list of exported contracts.
CONTRACTS=(
  "UsageEscrow=contracts/src/UsageEscrow.sol"
  "MockUSDC=contracts/src/mocks/MockUSDC.sol"
  "MockUSDCProxy=contracts/src/mocks/MockUSDCProxy.sol"
  "MockSanctionsOracle=contracts/src/mocks/MockSanctionsOracle.sol"
  "MockSmartWallet=contracts/src/mocks/MockSmartWallet.sol"
  "TransferBatch=contracts/src/TransferBatch.sol"
)

check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  -h | --help)
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: anvil/export-abi.sh [--check]" >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/ensure.sh"
# shellcheck source=anvil/env.sh
source "$here/env.sh"
root=$PACTUM_REPO_ROOT
cd "$root"

# Forge's build output is progress for humans; keep stdout for our own summary. Only the
# contract sources are compiled: the exported artifacts do not depend on the tests, and with
# no metadata hash in the bytecode (foundry.toml) they are the same however they are built.
"$FORGE" build contracts/src >&2
out_dir=$("$FORGE" config --json |
  node -e 'process.stdout.write(require("path").resolve(process.argv[1], JSON.parse(require("fs").readFileSync(0, "utf8")).out))' "$root")

abi_dir="$root/abi"
dest=$abi_dir
if $check; then
  dest=$(mktemp -d)
  trap 'rm -rf "$dest"' EXIT
fi
mkdir -p "$dest"

# Picks each contract's artifact by its compilation target (so a same-named contract elsewhere
# cannot be taken by mistake) and writes the trimmed JSON: forge's ABI order, 2-space indent,
# trailing newline.
node - "$out_dir" "$dest" "${CONTRACTS[@]}" <<'JS'
const fs = require("fs");
const path = require("path");
const [outDir, dest, ...specs] = process.argv.slice(2);

function artifactsNamed(dir, file, found = []) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== "build-info") artifactsNamed(p, file, found);
    else if (entry.isFile() && entry.name === file) found.push(p);
  }
  return found;
}

let failed = false;
for (const spec of specs) {
  const [name, source] = spec.split("=");
  const matches = artifactsNamed(outDir, `${name}.json`)
    .map((p) => ({ p, a: JSON.parse(fs.readFileSync(p, "utf8")) }))
    .filter(({ a }) => {
      const target = a.metadata && a.metadata.settings && a.metadata.settings.compilationTarget;
      return target && target[source] === name;
    });
  if (matches.length !== 1) {
    console.error(`export-abi: expected one artifact for ${name} (${source}) in ${outDir}, found ${matches.length}`);
    failed = true;
    continue;
  }
  const a = matches[0].a;
  const code = a.bytecode.object;
  if (!/^0x[0-9a-fA-F]+$/.test(code)) {
    console.error(`export-abi: ${name} has no deployable bytecode (abstract, an interface, or unlinked libraries)`);
    failed = true;
    continue;
  }
  const out = {
    abi: a.abi,
    bytecode: { object: code },
    deployedBytecode: { object: a.deployedBytecode.object },
  };
  fs.writeFileSync(path.join(dest, `${name}.json`), JSON.stringify(out, null, 2) + "\n");
}
process.exit(failed ? 1 : 0);
JS

names=()
for spec in "${CONTRACTS[@]}"; do
  names+=("${spec%%=*}")
done

# Any other JSON file in abi/ is left over from a contract no longer exported.
extras=()
if [[ -d "$abi_dir" ]]; then
  while IFS= read -r -d '' file; do
    base=$(basename "$file" .json)
    keep=false
    for name in "${names[@]}"; do
      [[ "$name" == "$base" ]] && keep=true
    done
    $keep || extras+=("abi/$base.json")
  done < <(find "$abi_dir" -maxdepth 1 -name '*.json' -print0 | sort -z)
fi

if ! $check; then
  for extra in "${extras[@]}"; do
    rm -f "$root/$extra"
    echo "removed $extra (not in anvil/export-abi.sh's CONTRACTS)"
  done
  echo "wrote ${names[*]/%/.json} to abi/"
  exit 0
fi

stale=()
for name in "${names[@]}"; do
  if [[ ! -f "$abi_dir/$name.json" ]]; then
    stale+=("abi/$name.json (missing)")
  elif ! cmp -s "$dest/$name.json" "$abi_dir/$name.json"; then
    stale+=("abi/$name.json (differs from the contracts)")
  fi
done
for extra in "${extras[@]}"; do
  stale+=("$extra (not exported any more)")
done

if ((${#stale[@]} > 0)); then
  echo "abi/ is stale; run anvil/export-abi.sh and commit the result:" >&2
  printf '  %s\n' "${stale[@]}" >&2
  exit 1
fi
echo "abi/ is up to date (${names[*]})"
