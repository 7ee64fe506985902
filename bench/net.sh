#!/usr/bin/env bash
# Throughput through a published port: curl on the host fetches a SIZE_MB file from busybox
# httpd in a container, through 127.0.0.1:PORT and straight from the container's address,
# alternating, RUNS times each; prints the median rate of each and their ratio. (127.0.0.1
# goes through netmgr's connect-time redirect where BPF is available, else the DNAT rules;
# with `dock --debug`, the container's monitor.log says which.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-7}
size_mb=${SIZE_MB:-200}
build_dock
work=$(mktemp -d /tmp/dock-bench-net.XXXXXX)
root="$work/root"
# The root's bridge and nftables table: named after a hash of the root (NetConfig::for_root).
tag=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:6])' "$root")
cleanup() {
    "$dock" --root "$root" ps -aq 2>/dev/null | xargs -r "$dock" --root "$root" rm -f >/dev/null 2>&1 || true
    remove_cgroup_parent "$root"
    nft delete table ip "dock-$tag" 2>/dev/null || true
    ip link delete "dock$tag" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

make_busybox_rootfs "$work/rootfs"
mkdir -p "$work/rootfs/www"
dd if=/dev/urandom of="$work/rootfs/www/big" bs=1M count="$size_mb" status=none
tar -C "$work/rootfs" -c . | "$dock" --root "$root" import - bench >/dev/null
rm -rf "$work/rootfs"

id=$("$dock" --root "$root" run -d --name bench-net -p 80 bench httpd -f -p 80 -h /www)
settings=$("$dock" --root "$root" inspect "$id")
ip=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["NetworkSettings"]["IpAddress"])' <<<"$settings")
port=$("$dock" --root "$root" port "$id" 80 | head -1 | cut -d: -f2)

fetch() { curl -sf -o /dev/null --max-time 120 -w '%{speed_download}\n' "$1"; }
# Wait for httpd, then warm the page cache once.
for _ in $(seq 100); do curl -sf -o /dev/null "http://$ip/" -r 0-0 2>/dev/null && break || sleep 0.1; done
fetch "http://$ip/big" >/dev/null

published=()
direct=()
for _ in $(seq "$runs"); do
    published+=("$(fetch "http://127.0.0.1:$port/big")")
    direct+=("$(fetch "http://$ip/big")")
done
med() { printf '%s\n' "$@" | python3 -c 'import statistics,sys; print(statistics.median(float(l) for l in sys.stdin))'; }
via_port=$(med "${published[@]}")
straight=$(med "${direct[@]}")
mib() { python3 -c "print(f'{$1 / 2**20:.0f}')"; }
printf 'published port 127.0.0.1:%-5s %8s MiB/s\n' "$port" "$(mib "$via_port")"
printf 'container %-15s    %8s MiB/s\n' "$ip:80" "$(mib "$straight")"
printf 'ratio published/direct         %8s (target >= 0.9); %s MB x %s runs each, median\n' \
    "$(ratio "$via_port" "$straight")" "$size_mb" "$runs"
