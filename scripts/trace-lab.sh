#!/usr/bin/env bash
# A chain of router namespaces for the traceroute tests and benchmark.
#
#   scripts/trace-lab.sh up PREFIX     build it (namespaces PREFIX-s, -r1 … -d)
#   scripts/trace-lab.sh ecmp PREFIX   make r2 balance over r3a and r3b (layer-4 hash)
#   scripts/trace-lab.sh down PREFIX   remove it
#
#   s ── r1 ── r2 ──┬── r3a ──┬── r4 ── r5 ── … ── r9 ── d
#                   └── r3b ──┘
#
# Link k (1…10; 13 and 14 for r3b's) is 10.88.k.0/24 and fd88:k::/64; the
# upstream end is .1 / ::1, the downstream end .2 / ::2. Until `ecmp`, r2
# forwards via r3a only, so the path from s to d (10.88.10.2, fd88:10::2)
# is ten hops: 10.88.k.2 (fd88:k::2) at TTL k.
# Routers answer from the address of the interface the probe came in on
# (icmp_errors_use_inbound_ifaddr), with ICMP rate limiting off, and no
# reverse-path filter (ECMP brings packets in by either branch). Root only.
set -euo pipefail

cmd=${1:?usage: trace-lab.sh up|ecmp|down PREFIX}
p=${2:?usage: trace-lab.sh up|ecmp|down PREFIX}
nodes=(s r1 r2 r3a r3b r4 r5 r6 r7 r8 r9 d)

in_ns() { ip netns exec "$p-$1" "${@:2}"; }

# link NAME_A NAME_B K: veth between two namespaces, addresses of link K.
link() {
    local a=$1 b=$2 k=$3
    ip link add "$p$k"a netns "$p-$a" type veth peer name "$p$k"b netns "$p-$b"
    in_ns "$a" ip addr add "10.88.$k.1/24" dev "$p$k"a
    in_ns "$b" ip addr add "10.88.$k.2/24" dev "$p$k"b
    in_ns "$a" ip addr add "fd88:$k::1/64" dev "$p$k"a nodad
    in_ns "$b" ip addr add "fd88:$k::2/64" dev "$p$k"b nodad
    in_ns "$a" ip link set "$p$k"a up
    in_ns "$b" ip link set "$p$k"b up
}

# route NODE UPSTREAM_K DOWNSTREAM_GATEWAY_K: towards s by link UPSTREAM_K,
# towards d's link by the downstream end of link DOWNSTREAM_K.
route() {
    local n=$1 up=$2 down=$3
    in_ns "$n" ip route add 10.88.0.0/16 via "10.88.$up.1"
    in_ns "$n" ip -6 route add fd88::/16 via "fd88:$up::1"
    if [ -n "$down" ]; then
        in_ns "$n" ip route add 10.88.10.0/24 via "10.88.$down.2"
        in_ns "$n" ip -6 route add fd88:10::/64 via "fd88:$down::2"
    fi
}

case $cmd in
up)
    for n in "${nodes[@]}"; do
        ip netns add "$p-$n"
        in_ns "$n" ip link set lo up
        in_ns "$n" sh -c '
            for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > "$f"; done
            echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad
            echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad
            echo 1 > /proc/sys/net/ipv4/ip_forward
            echo 1 > /proc/sys/net/ipv6/conf/all/forwarding
            echo 0 > /proc/sys/net/ipv4/icmp_ratelimit
            echo 0 > /proc/sys/net/ipv6/icmp/ratelimit
            echo 100000 > /proc/sys/net/ipv4/icmp_msgs_per_sec
            echo 100000 > /proc/sys/net/ipv4/icmp_msgs_burst
            echo 1 > /proc/sys/net/ipv4/icmp_errors_use_inbound_ifaddr
            echo 1 > /proc/sys/net/ipv4/fib_multipath_hash_policy
            echo 1 > /proc/sys/net/ipv6/fib_multipath_hash_policy'
    done
    link s r1 1
    link r1 r2 2
    link r2 r3a 3
    link r3a r4 4
    link r2 r3b 13
    link r3b r4 14
    link r4 r5 5
    link r5 r6 6
    link r6 r7 7
    link r7 r8 8
    link r8 r9 9
    link r9 d 10
    for n in "${nodes[@]}"; do
        in_ns "$n" sh -c 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > "$f"; done'
    done
    in_ns s ip route add default via 10.88.1.2
    in_ns s ip -6 route add default via fd88:1::2
    in_ns d ip route add default via 10.88.10.1
    in_ns d ip -6 route add default via fd88:10::1
    route r1 1 2
    route r2 2 3
    route r3a 3 4
    route r3b 13 14
    route r4 4 5
    route r5 5 6
    route r6 6 7
    route r7 7 8
    route r8 8 9
    route r9 9 ""
    # Fresh interfaces lose the first neighbour solicitation (IPv6 answers
    # it a second later): resolve every neighbour along the path now, so
    # that the first trace does not spend its timeout in neighbour
    # discovery.
    # A UDP datagram to a closed port of d comes back as "port
    # unreachable" once the whole path is resolved, both ways.
    in_ns s python3 -c '
import socket, sys
for host in sys.argv[1:]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for attempt in range(50):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        s.connect((host, 9))
        s.send(b"x")
        try:
            s.recv(1)
        except ConnectionRefusedError:
            break
        except OSError:
            pass
    else:
        sys.exit("trace-lab.sh: " + host + " does not answer")
' 10.88.10.2 fd88:10::2
    ;;
ecmp)
    in_ns r2 ip route replace 10.88.10.0/24 nexthop via 10.88.3.2 nexthop via 10.88.13.2
    in_ns r2 ip -6 route replace fd88:10::/64 nexthop via fd88:3::2 nexthop via fd88:13::2
    ;;
down)
    for n in "${nodes[@]}"; do
        ip netns del "$p-$n" 2>/dev/null || true
    done
    ;;
*)
    echo "usage: trace-lab.sh up|ecmp|down PREFIX" >&2
    exit 2
    ;;
esac
