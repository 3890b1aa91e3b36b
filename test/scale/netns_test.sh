#!/usr/bin/env bash
# Many hosts behind the kernel (docs/scaling.md, recipe 2): a client namespace,
# a balancer namespace with nftables, three backends running uvwt-server with
# their own QUIC-LB server id and one shared reset secret.
#   netns_test.sh UVWT_SERVER UVWT_SCALE_PROBE
# Exit 77 (skipped) without root, `ip netns` or nft.
set -uo pipefail
server=$1 probe=$2
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "no ip (iproute2)"
command -v nft >/dev/null || skip "no nft (nftables)"
command -v conntrack >/dev/null || skip "no conntrack (conntrack tools)"
p=uvwt$$
ns() { ip netns exec "$p-$1" "${@:2}"; }
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
  for n in c lb b1 b2 b3; do ip netns del "$p-$n" 2>/dev/null; done
  rm -rf "$tmp"
}
tmp=$(mktemp -d)
trap cleanup EXIT
for n in c lb b1 b2 b3; do ip netns add "$p-$n" || skip "cannot create network namespaces"; done
for n in c lb b1 b2 b3; do ns "$n" ip link set lo up; done
ip link add "$p-c0" netns "$p-c" type veth peer name "$p-l0" netns "$p-lb"
ns c ip addr add 10.77.0.1/24 dev "$p-c0"; ns c ip link set "$p-c0" up
ns lb ip addr add 10.77.0.254/24 dev "$p-l0"; ns lb ip link set "$p-l0" up
for i in 1 2 3; do
  ip link add "$p-b$i" netns "$p-b$i" type veth peer name "$p-l$i" netns "$p-lb"
  ns "b$i" ip addr add "10.77.$i.2/24" dev "$p-b$i"; ns "b$i" ip link set "$p-b$i" up
  ns "b$i" ip route add default via "10.77.$i.1"
  ns lb ip addr add "10.77.$i.1/24" dev "$p-l$i"; ns lb ip link set "$p-l$i" up
done
ns lb sysctl -qw net.ipv4.ip_forward=1
# Short headers by the server id byte (@th,80,8: UDP payload byte 2, the
# first byte after the DCID's first octet); the rest (Initials) by 4-tuple hash.
ns lb nft -f - <<NFT || skip "nftables NAT not available in this kernel"
table ip lb {
  chain b1 {
    dnat to 10.77.1.2
  }
  chain b2 {
    dnat to 10.77.2.2
  }
  chain b3 {
    dnat to 10.77.3.2
  }
  map sid {
    typeof @th,80,8 : verdict
    elements = { 0x01 : jump b1, 0x02 : jump b2, 0x03 : jump b3 }
  }
  chain prerouting {
    type nat hook prerouting priority dstnat;
    udp dport 4433 @th,64,1 0 @th,80,8 vmap @sid
    udp dport 4433 jhash ip saddr . udp sport mod 3 vmap { 0 : jump b1, 1 : jump b2, 2 : jump b3 }
  }
}
NFT
secret=00112233445566778899aabbccddeeff
start_backend() {
  # Not through ns(): a function in the background is a subshell, and its
  # pid would take the signals the backend itself must get.
  ip netns exec "$p-b$1" "$server" --host "10.77.$1.2" --port 4433 --server-id "0$1" --lb-nonce-len 8 --reset-secret "$secret" \
    >"$tmp/b$1.log" 2>&1 &
  pids[$1]=$!
}
for i in 1 2 3; do start_backend $i; done
sleep 1
fail=0
count() { grep -c "^session: /echo" "$tmp/b$1.log" 2>/dev/null || true; }

# 1. Sessions spread across the backends.
ns c timeout 30 "$probe" spread 10.77.0.254 4433 18 || fail=1
spread=$(for i in 1 2 3; do count $i; done | tr '\n' ' ')
echo "sessions per backend: $spread"
used=0; for i in 1 2 3; do [ "$(count $i)" -gt 0 ] && used=$((used + 1)); done
[ "$used" -ge 2 ] || { echo "FAIL: sessions did not spread"; fail=1; }

# 2. A client that moves to a new port keeps its session on the same backend.
before=$(for i in 1 2 3; do count $i; done | tr '\n' ' ')
ns c timeout 30 "$probe" migrate 10.77.0.254 4433 || { echo "FAIL: migration"; fail=1; }
after=$(for i in 1 2 3; do count $i; done | tr '\n' ' ')
[ "$before" != "$after" ] || { echo "FAIL: migration probe made no session"; fail=1; }

# 3. A backend that dies: the balancer maps its id to a survivor, whose
# stateless reset (same secret) ends the client's connection at once.
ns c timeout 30 "$probe" reset 10.77.0.254 4433 >"$tmp/reset.out" 2>&1 &
rpid=$!
for _ in $(seq 50); do grep -q ready "$tmp/reset.out" && break; sleep 0.1; done
victim=0
for i in 1 2 3; do [ "$(count $i)" -gt "$(echo "$after" | cut -d' ' -f$i)" ] && victim=$i; done
if [ "$victim" = 0 ]; then echo "FAIL: reset probe's backend not found"; fail=1; else
  kill -9 "${pids[$victim]}"
  survivor=$((victim % 3 + 1))
  ns lb nft delete element ip lb sid "{ 0x0$victim }"
  ns lb nft add element ip lb sid "{ 0x0$victim : jump b$survivor }"
  # The flow's NAT binding still points at the dead host: drop it so the
  # next packet is routed afresh, by its connection id.
  ns lb conntrack -F >/dev/null 2>&1 || echo "note: no conntrack tool; flow keeps its old binding"
  wait $rpid || { echo "FAIL: no stateless reset from the survivor"; fail=1; }
  cat "$tmp/reset.out"
  start_backend "$victim"; sleep 0.5
fi

# 4. Graceful shutdown: SIGTERM sends GOAWAY/drain. A ReconnectingClient on
# the stopped backend loses its session when the drain ends and reconnects;
# it must get a working session on another backend (attempts the balancer
# still hashes to the stopped one are refused, and retried from a new port).
backend_of() {  # the backend whose log shows a session from client port $1
  for i in 1 2 3; do grep -q "^session: /echo from 10.77.0.1:$1 " "$tmp/b$i.log" && { echo "$i"; return; }; done
  echo 0
}
ns c timeout 20 "$probe" reconnect 10.77.0.254 4433 >"$tmp/reconnect.out" 2>&1 &
rpid=$!
for _ in $(seq 50); do grep -q "^ready" "$tmp/reconnect.out" && break; sleep 0.1; done
old=$(backend_of "$(sed -n 's/^ready port //p' "$tmp/reconnect.out")")
if [ "$old" = 0 ]; then echo "FAIL: reconnecting client's backend not found"; fail=1; kill "$rpid"; else
  kill -TERM "${pids[$old]}"
  wait $rpid || { echo "FAIL: no working session after the drain"; fail=1; }
  grep -v "^uvwt warn: .*verification" "$tmp/reconnect.out"
  new=$(backend_of "$(sed -n 's/^reconnected port \([0-9]*\).*/\1/p' "$tmp/reconnect.out")")
  if [ "$new" != 0 ] && [ "$new" != "$old" ]; then echo "reconnect ok b$old -> b$new"
  else echo "FAIL: reconnect went from backend $old to backend $new"; fail=1; fi
fi
ns c timeout 30 "$probe" spread 10.77.0.254 4433 6 | tee "$tmp/after_term.out"
grep -q "spread ok" "$tmp/after_term.out" || echo "note: sessions hashed to the stopped backend failed (no health check in the balancer)"

for i in 1 2 3; do echo "--- backend $i"; tail -3 "$tmp/b$i.log"; done
[ "$fail" = 0 ] && echo "netns scale test passed"
exit "$fail"
