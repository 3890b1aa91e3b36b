#!/usr/bin/env bash
# Installs uvwt into a staging prefix and builds a consumer with pkg-config only,
# the way users link: pkg-config --cflags --libs libuvwt.
set -euo pipefail
builddir=$1
srcdir=$2
sanitize=${3:-none}  # the library's b_sanitize: the consumer must match it
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
prefix=$(meson introspect "$builddir" --buildoptions | python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
libdir=$(meson introspect "$builddir" --buildoptions | python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "libdir"))')
DESTDIR="$stage" meson install -C "$builddir" --no-rebuild --quiet
root="$stage$prefix"
pc="$root/$libdir/pkgconfig"
[ -f "$pc/libuvwt.pc" ] || { echo "libuvwt.pc not installed"; exit 1; }
# The installed .pc names the real prefix; point pkg-config at the staging copy.
export PKG_CONFIG_SYSROOT_DIR="$stage"
export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# On Debian 12 the 1.x QUIC libraries come from the bootstrap prefix.
[ -d "$srcdir/.deps/lib/pkgconfig" ] && export PKG_CONFIG_PATH="$PKG_CONFIG_PATH:$srcdir/.deps/lib/pkgconfig"
flags=$(pkg-config --cflags --libs libuvwt)
echo "pkg-config --cflags --libs libuvwt: $flags"
extra=()
[ "$sanitize" != none ] && extra=(-fsanitize="$sanitize")
g++ -std=c++20 "${extra[@]}" -o "$stage/consumer" "$srcdir/test/install/consumer.cpp" $flags -luv
LD_LIBRARY_PATH="$root/$libdir" "$stage/consumer"
