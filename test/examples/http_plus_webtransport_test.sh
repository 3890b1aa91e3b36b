#!/usr/bin/env bash
# examples/http_plus_webtransport as a user runs it: fetch the page and its
# script over TCP, open a WebTransport session to the port and certificate the
# script names, then SIGTERM: both servers must close and uv_loop_close()
# succeed (exit status 0).
#   http_plus_webtransport_test.sh EXAMPLE UVWT_CLIENT
set -euo pipefail
example=$1
client=$2
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- example output:"; cat "$work/out" || true; exit 1; }

# A port free for TCP and UDP alike: retry a few random ones if bind fails.
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 20000))
  : >"$work/out"
  "$example" --port "$port" >"$work/out" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    grep -q '^webtransport: https' "$work/out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q '^webtransport: https' "$work/out" && break
  wait "$pid" 2>/dev/null || true
  pid=
done
[ -n "$pid" ] || fail "the example did not start"

fetch() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$1"; }
page=$(fetch "http://127.0.0.1:$port/") || fail "GET / failed"
grep -q '<script src="/app.js">' <<<"$page" || fail "the page does not load /app.js: $page"
script=$(fetch "http://127.0.0.1:$port/app.js") || fail "GET /app.js failed"
wt_url=$(sed -n "s/^const WT_URL = '\(.*\)';$/\1/p" <<<"$script")
hash=$(sed -n "s/^const CERT_SHA256 = '\(.*\)';$/\1/p" <<<"$script")
[ "$wt_url" = "https://localhost:$port/echo" ] || fail "script names WebTransport URL '$wt_url'"
[ -n "$hash" ] || fail "script carries no certificate hash"
echo "page and script served over TCP; script points at $wt_url"
# A 404 for anything else, and the server keeps running.
code=$(python3 -c '
import sys, urllib.request, urllib.error
try: urllib.request.urlopen(sys.argv[1], timeout=10); print(200)
except urllib.error.HTTPError as e: print(e.code)' "http://127.0.0.1:$port/missing")
[ "$code" = 404 ] || fail "GET /missing answered $code"

# The session pins the hash the script carries, as the browser would.
"$client" "$wt_url" --cert-hash "$hash" --send "hello from the test" --datagrams 5 --timeout 20 ||
  fail "WebTransport session on the same loop failed"

kill -TERM "$pid"
rc=0
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid" || rc=$?
pid=
cat "$work/out"
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
grep -q '^uv_loop_close: 0' "$work/out" || fail "uv_loop_close did not return 0"
grep -q '^webtransport: session from' "$work/out" || fail "the server saw no session"
echo "PASS: page over TCP, session over WebTransport, clean shutdown on SIGTERM"
