#!/usr/bin/env bash
# Checks the local-chain scripts end to end, as the README uses them: starts anvil in the
# background on a spare port, deploys, reads the deployment back from the chain with cast, and
# stops anvil. Run by ../test.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=anvil/env.sh
source "$here/env.sh"

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export PACTUM_ANVIL_PORT=$port
work=$(mktemp -d)
trap '"$here/start.sh" --stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

rpc=$("$here/start.sh" --background)
"$here/deploy.sh" "$rpc" --out "$work/deployment.json" >"$work/stdout.json" 2>"$work/deploy.log" || {
  cat "$work/deploy.log" >&2
  exit 1
}
cmp -s "$work/stdout.json" "$work/deployment.json" || {
  echo "deploy.sh: --out differs from stdout" >&2
  exit 1
}

field() {
  node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(process.argv[2].split(".").reduce((o,k)=>o[k],d))' "$work/deployment.json" "$1"
}
escrow=$(field contracts.usage_escrow)
usdc=$(field contracts.usdc)
buyer=$(field accounts.buyer.address)

token=$("$CAST" call --rpc-url "$rpc" "$escrow" 'token()(address)')
[[ "${token,,}" == "${usdc,,}" ]] || {
  echo "escrow.token() is $token, expected $usdc" >&2
  exit 1
}
balance=$("$CAST" call --rpc-url "$rpc" "$usdc" 'balanceOf(address)(uint256)' "$buyer")
[[ "${balance%% *}" == "1000000000000" ]] || {
  echo "buyer holds $balance mock USDC base units, expected 1000000000000" >&2
  exit 1
}
# The token is a proxy in front of MockUSDC: its admin sees the implementation, and may not
# reach the token through it.
implementation=$(field contracts.usdc_implementation)
proxy_admin=$(field accounts.usdc_proxy_admin.address)
seen=$("$CAST" call --rpc-url "$rpc" --from "$proxy_admin" "$usdc" 'implementation()(address)')
[[ "${seen,,}" == "${implementation,,}" ]] || {
  echo "the USDC proxy forwards to $seen, expected $implementation" >&2
  exit 1
}
if "$CAST" call --rpc-url "$rpc" --from "$proxy_admin" "$usdc" 'balanceOf(address)(uint256)' "$buyer" \
  >/dev/null 2>&1; then
  echo "the USDC proxy's admin could call the token through it" >&2
  exit 1
fi
echo "start.sh + deploy.sh: escrow $escrow on $rpc, buyer funded, USDC behind its proxy"
