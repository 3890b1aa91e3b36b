#!/usr/bin/env bash
# examples/telemetry_client across a server crash: the echo server is killed
# (SIGKILL) while readings flow, stays away long enough for several retries,
# and comes back on the same port with the same certificate. The client must
# log its backoff, reconnect, deliver every reading and exit cleanly.
#   telemetry_test.sh ECHO_SERVER TELEMETRY_CLIENT
set -euo pipefail
server=$1
client=$2
work=$(mktemp -d)
spid=
cpid=
cleanup() {
  [ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null || true
  [ -n "$cpid" ] && kill -KILL "$cpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- client:"; cat "$work/client" || true
  echo "--- server:"; cat "$work/server"* || true
  exit 1
}
wait_for() {  # FILE PATTERN SECONDS
  for _ in $(seq $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
start_server() {  # the same port and certificate files every time
  : >"$work/server$1"
  "$server" "$port" "$work/cert.pem" "$work/key.pem" >"$work/server$1" 2>&1 &
  spid=$!
  wait_for "$work/server$1" 'cert sha256' 10 || fail "server run $1 did not start"
}

port=$((20000 + RANDOM % 20000))
start_server 1
hash=$(sed -n 's/.*cert sha256 //p' "$work/server1")
: >"$work/client"
"$client" "https://127.0.0.1:$port/echo" "$hash" --samples 60 >"$work/client" 2>&1 &
cpid=$!
wait_for "$work/client" '^telemetry: delivered' 15 || fail "no reading delivered before the crash"

kill -KILL "$spid"
wait "$spid" 2>/dev/null || true
spid=
echo "server killed"
wait_for "$work/client" '^telemetry: session lost' 15 || fail "the client did not notice the server was gone"
# Stay away until the client has retried at least three times.
for _ in $(seq 200); do
  [ "$(grep -c 'retrying in' "$work/client")" -ge 3 ] && break
  sleep 0.1
done
[ "$(grep -c 'retrying in' "$work/client")" -ge 3 ] || fail "fewer than 3 retries logged"

start_server 2
[ "$(sed -n 's/.*cert sha256 //p' "$work/server2")" = "$hash" ] || fail "restarted server has another certificate"
echo "server restarted"
rc=0
for _ in $(seq 300); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
wait "$cpid" || rc=$?
cpid=
cat "$work/client"
[ "$rc" = 0 ] || fail "client exit status $rc"
[ "$(grep -c '^telemetry: connected' "$work/client")" -ge 2 ] || fail "the client did not reconnect"
grep -q '^telemetry: stopping (all readings delivered)' "$work/client" || fail "not every reading delivered"
grep -q '^uv_loop_close: 0' "$work/client" || fail "uv_loop_close did not return 0"
echo "retry delays logged: $(sed -n 's/.*retrying in \([0-9]*\) ms.*/\1/p' "$work/client" | tr '\n' ' ')"
echo "PASS: reconnected after the crash with backoff and delivered all readings"
