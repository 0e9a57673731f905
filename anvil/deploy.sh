#!/usr/bin/env bash
# Deploys Pactum's contracts from the committed abi/*.json to a dev chain and funds the demo
# accounts, then prints what was deployed as JSON on stdout (progress goes to stderr).
#
#   anvil/deploy.sh [RPC_URL] [--out FILE]
#
# RPC_URL defaults to $PACTUM_RPC_URL, then http://127.0.0.1:8545. Deploys MockUSDC behind a
# MockUSDCProxy (initialized by its constructor, as USDC is deployed behind FiatTokenProxy),
# MockSanctionsOracle and UsageEscrow(usdc proxy, oracle, fee recipient) from anvil's dev account 0
# and mints 1,000,000 mock USDC to the buyer and to the seller. The accounts are anvil's well-known
# dev accounts (mnemonic "test test ... junk", public knowledge, never to be used on a real
# network): 0 deployer (owner, pauser and blacklister of the token), 1 buyer, 2 seller,
# 3 relayer, 8 the token proxy's admin, 9 fee recipient.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rpc_url=""
out=""
while (($# > 0)); do
  case "$1" in
    --out)
      out=${2:?--out needs a file}
      shift
      ;;
    -h | --help)
      sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "anvil/deploy.sh: unknown option $1" >&2
      exit 2
      ;;
    *)
      if [[ -n "$rpc_url" ]]; then
        echo "anvil/deploy.sh: more than one RPC URL given" >&2
        exit 2
      fi
      rpc_url=$1
      ;;
  esac
  shift
done
rpc_url=${rpc_url:-${PACTUM_RPC_URL:-http://127.0.0.1:8545}}

if [[ -z "${PACTUM_CAST_BIN:-}" ]]; then
  "$here/ensure.sh"
fi
# shellcheck source=anvil/env.sh
source "$here/env.sh"
abi_dir="$PACTUM_REPO_ROOT/abi"

mnemonic="test test test test test test test test test test test junk"
# One mock USDC is 10^6 base units; each demo party gets a million.
fund_amount=1000000000000

key_of() { "$CAST" wallet private-key --mnemonic "$mnemonic" --mnemonic-index "$1"; }
address_of() { "$CAST" wallet address --private-key "$1"; }

# bytecodes NAME...: the creation bytecode in each abi/NAME.json, one a line.
bytecodes() {
  node -e '
    const fs = require("fs");
    const [dir, ...names] = process.argv.slice(1);
    for (const name of names) {
      const file = `${dir}/${name}.json`;
      if (!fs.existsSync(file)) {
        console.error(`anvil/deploy.sh: ${file} is missing; run anvil/export-abi.sh`);
        process.exit(1);
      }
      console.log(JSON.parse(fs.readFileSync(file, "utf8")).bytecode.object);
    }
  ' "$abi_dir" "$@"
}

# send ARGS...: sends a transaction from the deployer and waits for its receipt; fails unless the
# transaction succeeded. Prints the address of the contract it created, if any.
send() {
  local receipt
  receipt=$("$CAST" send --rpc-url "$rpc_url" --private-key "$deployer_key" --json "$@")
  node -e '
    const r = JSON.parse(process.argv[1]);
    if (r.status !== "0x1" && r.status !== 1 && r.status !== "1") {
      console.error(`anvil/deploy.sh: transaction ${r.transactionHash} failed (status ${r.status})`);
      process.exit(1);
    }
    if (r.contractAddress) console.log(r.contractAddress);
  ' "$receipt"
}

# deploy NAME CODE [CONSTRUCTOR_SIG ARGS...]: deploys creation code CODE and prints the address.
deploy() {
  local name=$1 code=$2 args="" address
  shift 2
  if (($# > 0)); then
    args=$("$CAST" abi-encode "$@")
    args=${args#0x}
  fi
  address=$(send --create "$code$args")
  address=$("$CAST" to-check-sum-address "$address")
  echo "deployed $name at $address" >&2
  printf '%s\n' "$address"
}

if ! chain_id=$("$CAST" chain-id --rpc-url "$rpc_url" 2>/dev/null); then
  echo "anvil/deploy.sh: no chain answers at $rpc_url (start one with anvil/start.sh)" >&2
  exit 1
fi

# Read every bytecode before sending anything, so a missing file fails without a half deployment.
codes=$(bytecodes MockUSDC MockUSDCProxy MockSanctionsOracle UsageEscrow)
{ read -r usdc_code; read -r proxy_code; read -r oracle_code; read -r escrow_code; } <<<"$codes"

deployer_key=$(key_of 0)
buyer_key=$(key_of 1)
seller_key=$(key_of 2)
relayer_key=$(key_of 3)
deployer=$(address_of "$deployer_key")
buyer=$(address_of "$buyer_key")
seller=$(address_of "$seller_key")
relayer=$(address_of "$relayer_key")
fee_recipient=$("$CAST" wallet address --mnemonic "$mnemonic" --mnemonic-index 9)
proxy_admin=$("$CAST" wallet address --mnemonic "$mnemonic" --mnemonic-index 8)

usdc_implementation=$(deploy MockUSDC "$usdc_code")
init_call=$("$CAST" calldata "initialize(string,string,address,address,address)" \
  "USD Coin" "USDC" "$deployer" "$deployer" "$deployer")
usdc=$(deploy MockUSDCProxy "$proxy_code" "constructor(address,address,bytes)" \
  "$usdc_implementation" "$proxy_admin" "$init_call")
oracle=$(deploy MockSanctionsOracle "$oracle_code")
escrow=$(deploy UsageEscrow "$escrow_code" "constructor(address,address,address)" "$usdc" "$oracle" "$fee_recipient")

for party in "$buyer" "$seller"; do
  send "$usdc" "mint(address,uint256)" "$party" "$fund_amount" >/dev/null
  echo "minted $fund_amount mock USDC base units to $party" >&2
done

result=$(node -e '
  const [chainId, rpcUrl, escrow, usdc, usdcImplementation, oracle, deployer, proxyAdmin, relayer,
    relayerKey, buyer, buyerKey, seller, sellerKey, feeRecipient] = process.argv.slice(1);
  const out = {
    chain_id: Number(chainId),
    rpc_url: rpcUrl,
    contracts: {
      usage_escrow: escrow,
      usdc: usdc,
      usdc_implementation: usdcImplementation,
      sanctions_oracle: oracle,
    },
    accounts: {
      deployer: { address: deployer },
      usdc_proxy_admin: { address: proxyAdmin },
      relayer: { address: relayer, private_key: relayerKey },
      buyer: { address: buyer, private_key: buyerKey },
      seller: { address: seller, private_key: sellerKey },
      fee_recipient: { address: feeRecipient },
    },
  };
  process.stdout.write(JSON.stringify(out, null, 2) + "\n");
' "$chain_id" "$rpc_url" "$escrow" "$usdc" "$usdc_implementation" "$oracle" "$deployer" \
  "$proxy_admin" "$relayer" "$relayer_key" "$buyer" "$buyer_key" "$seller" "$seller_key" \
  "$fee_recipient")

if [[ -n "$out" ]]; then
  mkdir -p "$(dirname "$out")"
  printf '%s' "$result" >"$out"
fi
printf '%s' "$result"
