#!/usr/bin/env bash
# examples/load_generator against examples/echo_server on loopback: a bounded
# run (8 clients, 2 s) must connect every session, print progress lines and a
# summary with requests and no errors, and exit cleanly.
#   load_generator_test.sh ECHO_SERVER LOAD_GENERATOR
set -euo pipefail
server=$1
loadgen=$2
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
"$server" "$port" >"$work/server" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'cert sha256' "$work/server" && break; sleep 0.1; done
hash=$(sed -n 's/.*cert sha256 //p' "$work/server")
[ -n "$hash" ] || { cat "$work/server"; echo "FAIL: server did not start"; exit 1; }
rc=0
timeout 60 "$loadgen" "https://127.0.0.1:$port/echo" "$hash" --clients 8 --seconds 2 --size 2048 >"$work/out" 2>&1 || rc=$?
cat "$work/out"
fail() { echo "FAIL: $*"; exit 1; }
[ "$rc" = 0 ] || fail "exit status $rc"
grep -q '^connected 8 of 8 sessions' "$work/out" || fail "not every session connected"
[ "$(grep -c '^progress: ' "$work/out")" -ge 1 ] || fail "no progress line"
summary=$(grep '^summary: ' "$work/out") || fail "no summary"
grep -q 'errors 0$' <<<"$summary" || fail "errors in the summary"
requests=$(sed -n 's/.*; \([0-9]*\) requests of.*/\1/p' <<<"$summary")
[ "${requests:-0}" -gt 0 ] || fail "no request completed"
grep -q '^uv_loop_close: 0' "$work/out" || fail "uv_loop_close did not return 0"
echo "PASS: $requests requests over 8 sessions"
