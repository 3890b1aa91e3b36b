#!/usr/bin/env bash
# The examples as a user runs them: a server process and a client process.
set -euo pipefail
server=$1
client=$2
log=$(mktemp)
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
port=$((20000 + RANDOM % 20000))
"$server" "$port" >"$log" 2>&1 &
pid=$!
for _ in $(seq 50); do grep -q 'cert sha256' "$log" && break; sleep 0.1; done
hash=$(sed -n 's/.*cert sha256 //p' "$log")
[ -n "$hash" ] || { cat "$log"; echo "server did not start"; exit 1; }
out=$(timeout 10 "$client" "$port" "$hash")
echo "$out"
[ "$(grep -c '^echo after' <<<"$out")" = 5 ]
