#!/usr/bin/env bash
# The one test command. On a fresh Debian machine it installs what it needs,
# then runs every check: formatting, lints, unit/integration/property tests,
# the simulator swarm. Keep it well inside 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# --- what a fresh machine needs ----------------------------------------------
need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)       # netns tests
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)      # netns tests: cut and loss
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind) # C API: misuse test under valgrind
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
  done
fi

# --- checks -------------------------------------------------------------------
log "format"
cargo fmt --all -- --check

log "lints"
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "tests (unit, integration, property, 1,000-seed simulator swarm, member processes, netns multicast, hostile input)"
log_file=$(mktemp)
trap 'rm -f "$log_file"' EXIT
set +e
cargo test --workspace >"$log_file" 2>&1
status=$?
set -e
grep -E "^(test result|     Running)|FAILED|panicked" "$log_file" || true
if [ "$status" -ne 0 ]; then
  echo "cargo test failed (exit $status); the last lines of its output:" >&2
  tail -n 60 "$log_file" >&2
  exit 1
fi

log "osiris demo: member processes on loopback (the README's main command)"
cargo run --release --quiet -p osiris-tools -- demo

log "C API: header, libosiris build + install, C and C++ examples as member processes, ASan, valgrind"
scripts/test-c-api.sh

log "simulator: 5,000 seeds, all fault mixes, release build"
cargo run --release --quiet -p osiris-sim -- --seeds 5000 | tail -n 3

passed=$(awk '/^test result: ok/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed/) sum += $i } END { print sum + 0 }' "$log_file")
echo
echo "tests: ${passed} passed, 0 failed"
