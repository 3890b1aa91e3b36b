#!/usr/bin/env bash
# Keeps docs/getting-started.md true: takes my_server.cpp and the g++ command of
# step 4 from the page, builds the server against a staged `meson install` with
# pkg-config, runs it, and talks to it with uvwt-client as step 2 does (stream
# echo and datagrams); then SIGINT must end it with exit status 0.
#   getting_started_test.sh BUILDDIR SRCDIR UVWT_CLIENT [SANITIZE]
set -euo pipefail
builddir=$1
srcdir=$2
client=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
sanitize=${4:-none}
page="$srcdir/docs/getting-started.md"
stage=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$stage"' EXIT
fail() { echo "FAIL: $*"; [ -f "$stage/out" ] && cat "$stage/out"; exit 1; }

python3 - "$page" "$stage" <<'PY'
import re, sys
text = open(sys.argv[1], encoding='utf-8').read()
m = re.search(r'<!-- getting-started: my_server\.cpp[^\n]*-->\n```cpp\n(.*?)```', text, re.S)
if not m:
    sys.exit('my_server.cpp block not found in getting-started.md')
open(sys.argv[2] + '/my_server.cpp', 'w').write(m.group(1))
g = re.search(r'^g\+\+ .*my_server\.cpp.*$', text, re.M)
if not g:
    sys.exit('g++ command not found in getting-started.md')
open(sys.argv[2] + '/build.sh', 'w').write(g.group(0) + '\n')
PY
echo "from the page: $(cat "$stage/build.sh")"

prefix=$(meson introspect "$builddir" --buildoptions | python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
libdir=$(meson introspect "$builddir" --buildoptions | python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "libdir"))')
DESTDIR="$stage/root" meson install -C "$builddir" --no-rebuild --quiet
lib="$stage/root$prefix/$libdir"
export PKG_CONFIG_SYSROOT_DIR="$stage/root"
export PKG_CONFIG_PATH="$lib/pkgconfig"
[ -d "$srcdir/.deps/lib/pkgconfig" ] && export PKG_CONFIG_PATH="$PKG_CONFIG_PATH:$srcdir/.deps/lib/pkgconfig"
# The page's command, with the page's prefix ($HOME/uvwt/lib) replaced by the staged one.
cmd=$(sed "s|\"\$HOME/uvwt/lib\"|\"$lib\"|" "$stage/build.sh")
[ "$sanitize" != none ] && cmd="$cmd -fsanitize=$sanitize"
(cd "$stage" && eval "$cmd") || fail "the page's g++ command failed"

port=$((20000 + RANDOM % 20000))
"$stage/my_server" "$port" >"$stage/out" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q '^cert-sha256 ' "$stage/out" && break; sleep 0.1; done
hash=$(sed -n 's/^cert-sha256 //p' "$stage/out")
[ -n "$hash" ] || fail "my_server did not start"
"$client" "https://localhost:$port/echo" --cert-hash "$hash" --send hi --datagrams 5 --timeout 20 ||
  fail "uvwt-client against my_server failed"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
pid=
cat "$stage/out"
[ "$rc" = 0 ] || fail "my_server exit status $rc after SIGINT"
echo "PASS: getting-started step 4 builds, serves and shuts down cleanly"
