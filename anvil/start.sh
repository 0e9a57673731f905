#!/usr/bin/env bash
# Starts the pinned anvil, waits until it answers eth_chainId, and prints its RPC URL on stdout.
#
#   anvil/start.sh [--background] [--pid-file FILE] [-- EXTRA ANVIL ARGS...]
#   anvil/start.sh --stop [--pid-file FILE]
#
# Foreground (default): anvil keeps running in this terminal, its log on stderr; Ctrl-C stops it.
# --background: anvil is detached, its log goes to target/anvil/anvil-<port>.log, its pid to the pid
#   file (default target/anvil/anvil-<port>.pid), and the script returns once the chain answers.
# --stop: stops the anvil whose pid is in the pid file.
#
# Environment: PACTUM_ANVIL_PORT (8545), PACTUM_ANVIL_HOST (127.0.0.1), PACTUM_ANVIL_CHAIN_ID
# (31337), PACTUM_ANVIL_STATE (a file: load the chain from it at start and save it at exit),
# PACTUM_ANVIL_BIN (which anvil; see anvil/env.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
background=false
stop=false
pid_file=""
extra=()
while (($# > 0)); do
  case "$1" in
    --background) background=true ;;
    --stop) stop=true ;;
    --pid-file)
      pid_file=${2:?--pid-file needs a file}
      shift
      ;;
    -h | --help)
      sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    --)
      shift
      extra=("$@")
      break
      ;;
    *)
      echo "anvil/start.sh: unknown argument $1 (anvil's own flags go after --)" >&2
      exit 2
      ;;
  esac
  shift
done

port=${PACTUM_ANVIL_PORT:-8545}
host=${PACTUM_ANVIL_HOST:-127.0.0.1}
chain_id=${PACTUM_ANVIL_CHAIN_ID:-31337}
# Where to reach it: a wildcard listen address is still reached over loopback.
case "$host" in
  0.0.0.0 | "::") connect_host=127.0.0.1 ;;
  *:*) connect_host="[$host]" ;;
  *) connect_host=$host ;;
esac
rpc_url="http://$connect_host:$port"
run_dir="$(cd "$here/.." && pwd)/target/anvil"
pid_file=${pid_file:-$run_dir/anvil-$port.pid}

if $stop; then
  if [[ ! -f "$pid_file" ]]; then
    echo "anvil/start.sh: no pid file at $pid_file" >&2
    exit 1
  fi
  pid=$(cat "$pid_file")
  # A stale pid file may name an unrelated process by now; only ever stop an anvil.
  if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q anvil; then
    echo "anvil/start.sh: pid $pid (from $pid_file) is not anvil any more; removing the stale pid file" >&2
    rm -f "$pid_file"
    exit 1
  fi
  if kill "$pid" 2>/dev/null; then
    # anvil writes PACTUM_ANVIL_STATE on the way out; wait for it to finish.
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$pid_file"
  exit 0
fi

# Install the pinned anvil unless one was named; without npm, anvil from PATH still serves.
if [[ -z "${PACTUM_ANVIL_BIN:-}" ]] && command -v npm >/dev/null 2>&1; then
  "$here/ensure.sh"
fi
# shellcheck source=anvil/env.sh
source "$here/env.sh"

# Answers 0 once the node at $rpc_url returns a chain id.
answers() {
  "$CAST" chain-id --rpc-url "$rpc_url" >/dev/null 2>&1
}

if answers; then
  echo "anvil/start.sh: something already answers at $rpc_url (chain id" \
    "$("$CAST" chain-id --rpc-url "$rpc_url")); set PACTUM_ANVIL_PORT to use another port" >&2
  exit 1
fi

args=(--host "$host" --port "$port" --chain-id "$chain_id")
if [[ -n "${PACTUM_ANVIL_STATE:-}" ]]; then
  mkdir -p "$(dirname "$PACTUM_ANVIL_STATE")"
  args+=(--state "$PACTUM_ANVIL_STATE")
fi
args+=(${extra[@]+"${extra[@]}"})

# wait_ready PID: polls until the node answers (0), the process PID exits (1) or 30 s pass (1).
wait_ready() {
  local pid=$1
  for _ in $(seq 1 300); do
    answers && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

if $background; then
  mkdir -p "$run_dir" "$(dirname "$pid_file")"
  log="$run_dir/anvil-$port.log"
  # setsid: a later Ctrl-C in the calling terminal must not reach the detached node.
  launcher=()
  command -v setsid >/dev/null 2>&1 && launcher=(setsid)
  ${launcher[@]+"${launcher[@]}"} "$PACTUM_ANVIL_BIN" "${args[@]}" >"$log" 2>&1 </dev/null &
  pid=$!
  if ! wait_ready "$pid"; then
    echo "anvil/start.sh: anvil did not answer at $rpc_url; its log ($log) ends with:" >&2
    tail -n 20 "$log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
  fi
  echo "$pid" >"$pid_file"
  echo "$rpc_url"
  exit 0
fi

# Foreground: a watcher announces the URL once the node answers, while this process becomes anvil
# itself (exec), so signals reach anvil directly and its exit status is ours.
self=$$
(
  if wait_ready "$self"; then
    echo "$rpc_url"
  elif kill -0 "$self" 2>/dev/null; then
    echo "anvil/start.sh: anvil did not answer at $rpc_url within 30 s" >&2
  fi
) &
exec "$PACTUM_ANVIL_BIN" "${args[@]}" >&2
