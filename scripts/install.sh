#!/usr/bin/env bash
# Builds the C library in release and installs it under PREFIX (default
# /usr/local):
#   PREFIX/lib/libosiris.so, PREFIX/lib/libosiris.a
#   PREFIX/include/osiris.h, PREFIX/include/osiris.hpp
#   PREFIX/lib/pkgconfig/osiris.pc
# Then: cc prog.c $(pkg-config --cflags --libs osiris)   (shared, with an rpath)
#   or: cc prog.c $(pkg-config --static --cflags osiris) PREFIX/lib/libosiris.a \
#         $(pkg-config --static --libs-only-l osiris | sed 's/-losiris//')
# For a PREFIX that pkg-config does not search, set
# PKG_CONFIG_PATH=PREFIX/lib/pkgconfig.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-${PREFIX:-/usr/local}}
cargo build --release --quiet -p osiris-ffi
target=${CARGO_TARGET_DIR:-target}/release
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$target/libosiris.so" "$prefix/lib/libosiris.so"
install -m 0644 "$target/libosiris.a" "$prefix/lib/libosiris.a"
install -m 0644 ffi/include/osiris.h ffi/include/osiris.hpp "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" ffi/osiris.pc.in \
  >"$prefix/lib/pkgconfig/osiris.pc"
echo "installed osiris $version under $prefix"
