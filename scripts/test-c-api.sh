#!/usr/bin/env bash
# The C API end to end (called by scripts/test.sh; runs alone too):
#   header freshness, release build of libosiris.{so,a}, install into a
#   staging prefix, the examples built with the system compilers through
#   pkg-config, three member processes of the C kv example (plain and under
#   AddressSanitizer/UBSan) and of the C++ counter on loopback with asserts
#   on their output, and the C misuse test under valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
fail() { echo "C API: $*" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

log "C API: the committed ffi/include/osiris.h matches a fresh cbindgen run"
cargo test --quiet -p osiris-ffi --test header 2>&1 | grep -E "^test result" || fail "stale header"

log "C API: release build, installed into a staging prefix"
scripts/install.sh "$work/prefix"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
pkg-config --exists osiris || fail "pkg-config does not find osiris"

log "C API: examples built with the system compilers via pkg-config"
cflags=(-std=c11 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -g)
# shellcheck disable=SC2046  # pkg-config output is meant to split into words
cc "${cflags[@]}" -o "$work/kv" ffi/examples/kv.c $(pkg-config --cflags --libs osiris) -lpthread
# shellcheck disable=SC2046
cc "${cflags[@]}" -fsanitize=address,undefined -fno-omit-frame-pointer -o "$work/kv-asan" \
  ffi/examples/kv.c $(pkg-config --cflags --libs osiris) -lpthread
# shellcheck disable=SC2046
cc "${cflags[@]}" -o "$work/misuse" ffi/examples/misuse.c $(pkg-config --cflags --libs osiris)
# The static library, linked with what `pkg-config --static` lists.
# shellcheck disable=SC2046
cc "${cflags[@]}" -o "$work/misuse-static" ffi/examples/misuse.c $(pkg-config --cflags osiris) \
  "$work/prefix/lib/libosiris.a" $(pkg-config --static --libs-only-l osiris | sed 's/-losiris//')
# shellcheck disable=SC2046
c++ -std=c++17 -Wall -Wextra -Werror -g -o "$work/counter" ffi/examples/counter.cpp \
  $(pkg-config --cflags --libs osiris) -lpthread
ldd "$work/misuse-static" | grep -q libosiris && fail "misuse-static links libosiris.so"

# run_members NAME WAIT_FOR PROGRAM ARGS_FIRST -- ARGS_OTHERS: starts member 1,
# waits for the line WAIT_FOR, then starts members 2 and 3 with member 1's
# address as their seed (the word SEED in ARGS_OTHERS); waits for all three.
run_members() {
  local name=$1 wait_for=$2 program=$3; shift 3
  local first=() others=()
  while [ "$1" != "--" ]; do first+=("$1"); shift; done; shift
  others=("$@")
  pids=()
  timeout 90 "$program" 1 "${first[@]}" >"$work/$name-1.out" 2>&1 & pids+=($!)
  local address=""
  for _ in $(seq 300); do
    grep -q "^$wait_for" "$work/$name-1.out" && address=$(awk '/^READY/ { print $2 }' "$work/$name-1.out") && break
    sleep 0.1
  done
  [ -n "$address" ] || { cat "$work/$name-1.out" >&2; fail "$name member 1 did not reach $wait_for"; }
  for id in 2 3; do
    timeout 90 "$program" "$id" "${others[@]/SEED/$address}" >"$work/$name-$id.out" 2>&1 & pids+=($!)
  done
  local status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  pids=()
  for id in 1 2 3; do echo "--- $name member $id"; cat "$work/$name-$id.out"; done
  [ "$status" -eq 0 ] || fail "$name: a member failed"
}

# same_line PATTERN NAME: the line matching PATTERN is identical at all three.
same_line() {
  local lines
  lines=$(grep -h "$1" "$work/$2-1.out" "$work/$2-2.out" "$work/$2-3.out" | sort -u)
  [ "$(echo "$lines" | wc -l)" -eq 1 ] && [ -n "$lines" ] || fail "$2: members differ on $1: $lines"
  echo "$lines"
}

check_kv() {
  local name=$1
  same_line "^TABLE" "$name" | grep -q "^TABLE entries=41 " || fail "$name: not 41 entries"
  for id in 1 2 3; do
    grep -q "^LOOKUP last replies=3 agree=yes" "$work/$name-$id.out" || fail "$name $id: lookup"
    grep -q "^BYE" "$work/$name-$id.out" || fail "$name $id: did not finish"
  done
  for id in 2 3; do
    grep -q "^LOADED 10$" "$work/$name-$id.out" || fail "$name $id: no state transfer of 10 entries"
  done
}

log "C API: kv (C), three member processes: OrderedSend updates, Query lookups, state transfer"
# Member 1 makes 10 updates alone; 2 and 3 join (and load them); then each
# makes 10 more and sets "last": 10 + 3 x 10 + 1 = 41 entries everywhere.
run_members kv PHASEA "$work/kv" bootstrap 10 10 3 41 -- SEED 0 10 3 41
check_kv kv

log "C API: kv again, every member built with AddressSanitizer and UBSan"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1 \
  run_members kv-asan PHASEA "$work/kv-asan" bootstrap 10 10 3 41 -- SEED 0 10 3 41
grep -l "AddressSanitizer\|runtime error" "$work"/kv-asan-*.out && fail "sanitizer reports"
check_kv kv-asan

log "C API: counter (C++ over osiris.hpp), three member processes"
run_members counter READY "$work/counter" bootstrap 3 50 -- SEED 3 50
same_line "^TOTAL" counter | grep -q "^TOTAL 300 ops=150 " || fail "counter: total is not 300"
for id in 1 2 3; do
  grep -q "^QUERY replies=3 agree=yes" "$work/counter-$id.out" || fail "counter $id: query"
  grep -q "^BYE" "$work/counter-$id.out" || fail "counter $id: did not finish"
done

log "C API: misuse from C (static library), then under valgrind (shared library)"
"$work/misuse-static" | tail -n 1
valgrind -q --error-exitcode=1 --leak-check=full --suppressions=ffi/tests/valgrind.supp \
  "$work/misuse" >"$work/misuse.out" 2>&1 || { cat "$work/misuse.out" >&2; fail "misuse under valgrind"; }
grep -E "^(FAIL|misuse:)" "$work/misuse.out"
echo "valgrind: no errors, no leaks"
