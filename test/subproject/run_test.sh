#!/usr/bin/env bash
# Builds test/subproject (a tiny parent project) with this checkout as its
# subproject, offline: subprojects/uvwt is a symlink to the checkout, as a git
# submodule or a copied tree would be. --force-fallback-for makes sure the
# subproject is what gets built, even where an installed libuvwt.pc exists.
#   run_test.sh SRCDIR WORKDIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
# A fixed work directory (inside the build directory) keeps reruns incremental.
mkdir -p "$work/parent/subprojects"
cp "$src/test/subproject/meson.build" "$src/test/subproject/parent.cpp" "$work/parent/"
ln -sfn "$src" "$work/parent/subprojects/uvwt"
if [ ! -f "$work/build/build.ninja" ]; then
  # buildtype plain: no optimisation, the fastest compile of the library copy.
  meson setup "$work/build" "$work/parent" --buildtype=plain --force-fallback-for=libuvwt --wrap-mode=nodownload
fi
ninja -C "$work/build"
"$work/build/parent"
